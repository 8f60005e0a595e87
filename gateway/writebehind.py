"""Write-behind: the latest live positions and statuses into PostgreSQL, in batches.

Changed artisans are in the Redis set `live:dirty` (added by the Lua scripts); any
process pops up to `limit` of them with their hash fields in one script call (one
packed string: cheap to parse) and writes them in ONE statement. On failure the ids
go back into the set. Current status is only written as ONLINE/BUSY for
VERIFIED rows (the schema's CHECK), OFFLINE otherwise.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable

import asyncpg
from aiohttp import web
from redis.asyncio import Redis

from core import appkeys, redis_keys
from gateway import appkeys as gateway_keys
from gateway import live
from gateway.tasks import stop_tasks

log = logging.getLogger("zendo.gateway")
_STATUSES = frozenset(("ONLINE", "BUSY", "OFFLINE"))

# A row is rewritten only when something worth keeping changed: the status, a first
# position, a move of over `min_move_m`, or a last write older than `max_age_s`. An
# artisan waiting for work drifts a few metres per fix; rewriting all of them every
# flush (a new row version and an entry in each of the table's four indexes, GiST
# included) was PostgreSQL's largest load in the dispatch benchmark and put 10-30 ms on
# the tail of every commit. Rows that fail the test are neither written nor locked.
_NEW_STATUS = "CASE WHEN a.status = 'VERIFIED' THEN u.status ELSE 'OFFLINE' END"
_UPDATE = f"""
UPDATE artisans AS a
   SET location = CASE WHEN u.lat IS NULL THEN a.location ELSE u.point END,
       location_updated_at = COALESCE(u.fix_at, a.location_updated_at),
       current_status = {_NEW_STATUS}
  FROM (SELECT id::uuid AS id, lat, to_timestamp(ts_ms / 1000.0) AS fix_at, status,
               ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography AS point
          FROM unnest($1::text[], $2::float8[], $3::float8[], $4::float8[], $5::text[])
               AS r(id, lat, lon, ts_ms, status)) AS u
 WHERE a.user_id = u.id
   AND (a.current_status IS DISTINCT FROM {_NEW_STATUS}
        OR (u.lat IS NOT NULL
            AND (a.location IS NULL OR a.location_updated_at IS NULL
                 OR u.fix_at >= a.location_updated_at + make_interval(secs => $7)
                 OR NOT ST_DWithin(a.location, u.point, $6, false))))
"""


# Rows per pop + UPDATE: small enough that neither the script (which holds Redis) nor
# the parsing here nor one UPDATE runs long; a backlog is drained chunk after chunk.
CHUNK = 2000


async def flush_once(
    redis: Redis,
    pool: asyncpg.Pool,
    limit: int = CHUNK,
    *,
    min_move_m: float = 25.0,
    max_age_s: float = 60.0,
) -> int:
    packed: str = await live.POP_DIRTY(
        redis, [redis_keys.LIVE_DIRTY, redis_keys.LIVE_ARTISAN_PREFIX, limit]
    )
    if not packed:
        return 0
    rows = [row.split("|") for row in packed.split("\n") if row]
    ids = [r[0] for r in rows]
    try:
        await pool.execute(
            _UPDATE,
            ids,
            [float(r[1]) if r[1] else None for r in rows],
            [float(r[2]) if r[2] else None for r in rows],
            [float(r[3]) if r[3] else None for r in rows],
            [r[4] if r[4] in _STATUSES else "OFFLINE" for r in rows],
            min_move_m,
            max_age_s,
        )
    except BaseException:
        try:
            await asyncio.shield(redis.sadd(redis_keys.LIVE_DIRTY, *ids))
        except Exception:
            log.warning("write-behind: could not requeue %d ids", len(ids))
        raise
    return len(ids)


def _flush(app: web.Application) -> Awaitable[int]:
    config = app[gateway_keys.GATEWAY_CONFIG]
    return flush_once(
        app[appkeys.REDIS],
        app[appkeys.PG_POOL],
        min_move_m=config.writebehind_min_move_m,
        max_age_s=config.writebehind_max_age_s,
    )


async def run(app: web.Application) -> None:
    interval = app[gateway_keys.GATEWAY_CONFIG].writebehind_interval_s
    while True:
        await asyncio.sleep(interval)
        try:
            while await _flush(app) >= CHUNK:
                pass
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("write-behind failed: %s", exc)


async def writebehind_ctx(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(run(app), name="gateway-write-behind")
    yield
    await stop_tasks(task)
    try:  # last positions of a clean shutdown (bounded: other processes drain the rest)
        for _ in range(25):
            if await _flush(app) < CHUNK:
                break
    except Exception as exc:
        log.warning("final write-behind failed: %s", exc)
