"""The ArtisanIndex mirror: app[appkeys.MATCH_INDEX] follows the fleet in every process.

Start-up: note the newest stream id, then rebuild the index from the live hashes
(every id in `live:ids`), then tail the stream from the noted id, so nothing that
happened during the rebuild is missed (events are full snapshots; replaying one
the rebuild already saw is harmless). After a Redis failure the mirror rebuilds
again, since the stream may have been lost with Redis's data.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from dispatch import appkeys, redis_keys

log = logging.getLogger("zendo.gateway")
_HASH_FIELDS = ("lat", "lon", "specialty", "level", "rating", "current_status")


def get_index(app: web.Application) -> Any:
    """The process's matching.ArtisanIndex (kept in sync by the mirror task)."""
    return app[appkeys.MATCH_INDEX]


def new_index() -> Any:
    from matching import ArtisanIndex, RankingPolicy

    return ArtisanIndex(policy=RankingPolicy())


def _apply(index: Any, rows: list[tuple[str, str, str, str, str, str, str]]) -> int:
    """Upsert snapshots (id, lat, lon, specialty, level, rating, status); last one wins."""
    latest: dict[str, tuple[str, ...]] = {}
    for row in rows:
        latest[row[0]] = row
    ids, lats, lons, specs, levels, ratings, statuses = [], [], [], [], [], [], []
    for aid, lat, lon, spec, level, rating, status in latest.values():
        if lat and lon and spec and level and rating:
            ids.append(aid)
            lats.append(float(lat))
            lons.append(float(lon))
            specs.append(spec)
            levels.append(level)
            ratings.append(float(rating))
            statuses.append(status or "OFFLINE")
        elif aid in index and status:
            index.set_status(aid, status)
    if ids:
        index.upsert_many(ids, lats, lons, specs, levels, ratings, statuses)
    return len(ids)


async def rebuild(redis: Redis, index: Any, chunk: int = 2000) -> str:
    """Load every live hash into the index; returns the stream id to tail from."""
    newest = await redis.xrevrange(redis_keys.ARTISAN_EVENTS, count=1)
    last_id = newest[0][0] if newest else "0-0"
    ids = sorted(await redis.smembers(redis_keys.LIVE_IDS))
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        pipe = redis.pipeline(transaction=False)
        for aid in part:
            pipe.hmget(redis_keys.live_artisan(aid), _HASH_FIELDS)
        values = await pipe.execute()
        rows = [(aid, *v) for aid, v in zip(part, values, strict=True) if v[0] is not None]
        _apply(index, rows)  # type: ignore[arg-type]
    log.info("index mirror rebuilt: %d artisans, tailing from %s", len(ids), last_id)
    return last_id


async def tail(redis: Redis, index: Any, last_id: str, *, block_ms: int = 1000) -> None:
    """Follow the events stream; raises on Redis errors (the caller rebuilds)."""
    while True:
        reply = await redis.xread({redis_keys.ARTISAN_EVENTS: last_id}, count=5000, block=block_ms)
        if not reply:
            continue
        _stream, entries = reply[0]
        rows = [
            (f["id"], f["lat"], f["lon"], f["sp"], f["lv"], f["rt"], f["st"]) for _eid, f in entries
        ]
        _apply(index, rows)
        last_id = entries[-1][0]


async def follow(redis: Redis, index: Any) -> None:
    backoff = 0.05
    while True:
        try:
            last_id = await rebuild(redis, index)
            backoff = 0.05
            await tail(redis, index, last_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("index mirror: %s; rebuilding in %.2fs", exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)


async def mirror_ctx(app: web.Application) -> AsyncIterator[None]:
    index = app.get(appkeys.MATCH_INDEX)
    if index is None:
        yield
        return
    redis = app[appkeys.REDIS]
    task: asyncio.Task[None] | None = None
    if app[appkeys.SETTINGS].run_background:
        task = asyncio.create_task(follow(redis, index), name="gateway-index-mirror")
    else:
        try:
            await rebuild(redis, index)
        except Exception as exc:
            log.warning("index mirror rebuild failed: %s", exc)
    yield
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
