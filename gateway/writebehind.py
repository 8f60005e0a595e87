"""Write-behind: the latest live positions and statuses into PostgreSQL, in batches.

Changed artisans are in the Redis set `live:dirty` (added by the Lua scripts); any
process pops up to `limit` of them and writes them in ONE statement. On failure
the ids go back into the set. Current status is only written as ONLINE/BUSY for
VERIFIED rows (the schema's CHECK), OFFLINE otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
from aiohttp import web
from redis.asyncio import Redis

from dispatch import appkeys, redis_keys

log = logging.getLogger("zendo.gateway")

_UPDATE = """
UPDATE artisans AS a
   SET location = CASE WHEN u.lat IS NULL THEN a.location
                       ELSE ST_SetSRID(ST_MakePoint(u.lon, u.lat), 4326)::geography END,
       location_updated_at = COALESCE(u.fix_at, a.location_updated_at),
       current_status = CASE WHEN a.status = 'VERIFIED' THEN u.status ELSE 'OFFLINE' END
  FROM unnest($1::uuid[], $2::float8[], $3::float8[], $4::timestamptz[], $5::text[])
       AS u(id, lat, lon, fix_at, status)
 WHERE a.user_id = u.id
"""


async def flush_once(redis: Redis, pool: asyncpg.Pool, limit: int = 10_000) -> int:
    ids: list[str] = await redis.spop(redis_keys.LIVE_DIRTY, limit) or []  # type: ignore[assignment]
    if not ids:
        return 0
    try:
        pipe = redis.pipeline(transaction=False)
        for aid in ids:
            pipe.hmget(redis_keys.live_artisan(aid), ["lat", "lon", "ts", "current_status"])
        values = await pipe.execute()
        uids, lats, lons, fix_ats, statuses = [], [], [], [], []
        for aid, (lat, lon, ts, status) in zip(ids, values, strict=True):
            uids.append(uuid.UUID(aid))
            lats.append(float(lat) if lat else None)
            lons.append(float(lon) if lon else None)
            fix_ats.append(datetime.fromtimestamp(int(float(ts)) / 1000, UTC) if ts else None)
            statuses.append(status if status in ("ONLINE", "BUSY", "OFFLINE") else "OFFLINE")
        await pool.execute(_UPDATE, uids, lats, lons, fix_ats, statuses)
    except BaseException:
        try:
            await asyncio.shield(redis.sadd(redis_keys.LIVE_DIRTY, *ids))
        except Exception:
            log.warning("write-behind: could not requeue %d ids", len(ids))
        raise
    return len(ids)


async def run(app: web.Application) -> None:
    interval = app[appkeys.GATEWAY_CONFIG].writebehind_interval_s
    while True:
        await asyncio.sleep(interval)
        try:
            while await flush_once(app[appkeys.REDIS], app[appkeys.PG_POOL]) >= 10_000:
                pass
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("write-behind failed: %s", exc)


async def writebehind_ctx(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(run(app), name="gateway-write-behind")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    try:  # last positions of a clean shutdown
        await flush_once(app[appkeys.REDIS], app[appkeys.PG_POOL])
    except Exception as exc:
        log.warning("final write-behind failed: %s", exc)
