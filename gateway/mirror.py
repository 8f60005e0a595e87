"""The ArtisanIndex mirror: app[appkeys.MATCH_INDEX] follows the fleet in every process.

Start-up: note the newest stream id, then rebuild the index from the live hashes
(every id in `live:ids`), then tail the stream from the noted id, so nothing that
happened during the rebuild is missed (events are full snapshots; replaying one
the rebuild already saw is harmless). After a Redis failure the mirror rebuilds
again, since the stream may have been lost with Redis's data.

Once caught up, the tail waits `APPLY_INTERVAL_S` before reading again, so that each
read applies a batch: the location batchers' many small flushes, applied one by one as
they came, made the mirror a seventh of each worker's CPU under the README's load test.
Each read then finds its code cold: it is written and read off the socket
(gateway/stream_tail.py), and a batch of up to `matching.index.SMALL_BATCH` rows is
upserted row by row. The index trails the live state by at most that interval (the
dispatcher re-checks every candidate in PostgreSQL anyway). Fixes reach the stream only
when they move the artisan's PostgreSQL copy (25 m, 60 s or a status change:
gateway/lua.py), so an artisan waiting in place costs the mirror nothing per fix.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, cast

from aiohttp import web
from redis.asyncio import Redis

from core import appkeys, redis_keys
from gateway.stream_tail import close_tail, open_tail
from gateway.tasks import stop_tasks
from matching import ArtisanIndex, RankingPolicy, warmup

log = logging.getLogger("zendo.gateway")
_HASH_FIELDS = ("lat", "lon", "specialty", "level", "rating", "current_status")
APPLY_INTERVAL_S = 0.05
# Stream entries read at once (each is one flush of some batcher: up to a few hundred rows).
READ_COUNT = 1000


def get_index(app: web.Application) -> Any:
    """The process's matching.ArtisanIndex (kept in sync by the mirror task)."""
    return app[appkeys.MATCH_INDEX]


def new_index() -> ArtisanIndex:
    """A warmed-up index. Blocking (numba loads or compiles its kernels): call it in a thread."""
    warmup()
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


def parse_event(packed: str) -> list[tuple[str, str, str, str, str, str, str]]:
    """Rows of one stream entry (gateway/lua.py `emit`: id|status|lat|lon|specialty|
    level|rating|ts per line) as (id, lat, lon, specialty, level, rating, status)."""
    rows = []
    for line in packed.split("\n"):
        aid, status, lat, lon, spec, level, rating, _ts = line.split("|")
        rows.append((aid, lat, lon, spec, level, rating, status))
    return rows


async def rebuild(redis: Redis, index: Any, chunk: int = 2000) -> str:
    """Load every live hash into the index; returns the stream id to tail from."""
    newest = await redis.xrevrange(redis_keys.ARTISAN_EVENTS, count=1)
    last_id = cast(str, newest[0][0]) if newest else "0-0"
    ids = sorted(cast("set[str]", await redis.smembers(redis_keys.LIVE_IDS)))
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        pipe = redis.pipeline(transaction=False)
        for aid in part:
            pipe.hmget(redis_keys.live_artisan(aid), _HASH_FIELDS)
        values = await pipe.execute()
        rows = [(aid, *v) for aid, v in zip(part, values, strict=True) if v[0] is not None]
        _apply(index, rows)
    log.info("index mirror rebuilt: %d artisans, tailing from %s", len(ids), last_id)
    return last_id


async def tail(
    redis: Redis,
    index: Any,
    last_id: str,
    *,
    block_ms: int = 1000,
    stop: asyncio.Event | None = None,
    apply_interval_s: float = APPLY_INTERVAL_S,
) -> None:
    """Follow the events stream until `stop` is set, on a connection of its own
    (gateway/stream_tail.py); raises on Redis errors (the caller rebuilds)."""
    connection, stream = await open_tail(redis)
    try:
        while stop is None or not stop.is_set():
            entries = await stream.xread(
                redis_keys.ARTISAN_EVENTS, last_id, count=READ_COUNT, block_ms=block_ms
            )
            if not entries:
                continue
            _apply(index, [row for _eid, f in entries for row in parse_event(f["d"])])
            last_id = entries[-1][0]
            if len(entries) < READ_COUNT:  # caught up: let the next batch gather
                await asyncio.sleep(apply_interval_s)
    finally:
        await close_tail(connection, stream)


async def follow(
    redis: Redis,
    index: Any,
    last_id: str | None = None,
    *,
    stop: asyncio.Event | None = None,
    block_ms: int = 1000,
) -> None:
    """Tail the stream from `last_id` (or rebuild first); rebuild after any Redis failure.

    Returns within `block_ms` of `stop` being set, cancelled or not: redis-py (a
    rebuild's reads) can swallow a cancellation, and asyncio.Runner's final
    cancel-and-wait would then wait for this loop forever."""
    backoff = 0.05
    while stop is None or not stop.is_set():
        try:
            if last_id is None:
                last_id = await rebuild(redis, index)
            backoff = 0.05
            await tail(redis, index, last_id, block_ms=block_ms, stop=stop)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            last_id = None
            log.warning("index mirror: %s; rebuilding in %.2fs", exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)


async def mirror_ctx(app: web.Application) -> AsyncIterator[None]:
    # Off the event loop: numba's kernels load (or compile) here, not on the first query.
    try:
        index = await asyncio.to_thread(new_index)
    except ImportError:  # the matching library is optional for a gateway-only process
        log.warning("matching library unavailable: this process has no ArtisanIndex")
        yield
        return
    redis = app[appkeys.REDIS]
    # The index is published only once it holds the fleet: a dispatcher resuming jobs
    # at start-up must not rank against an empty index and give up on them.
    last_id: str | None
    try:
        last_id = await rebuild(redis, index)
    except Exception as exc:
        last_id = None
        log.warning("index mirror rebuild failed: %s", exc)
    app[appkeys.MATCH_INDEX] = index
    task: asyncio.Task[None] | None = None
    stopping = asyncio.Event()
    if app[appkeys.SETTINGS].run_background:
        task = asyncio.create_task(
            follow(redis, index, last_id, stop=stopping), name="gateway-index-mirror"
        )
    yield
    stopping.set()
    if task is not None:
        await stop_tasks(task)  # re-cancels: redis-py can swallow one cancellation
