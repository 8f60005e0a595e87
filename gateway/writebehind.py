"""Write-behind: the latest live positions and statuses into PostgreSQL, in batches.

Changed artisans are in the Redis set `live:dirty` (added by the Lua scripts); any
process pops up to `limit` of them with their hash fields in one script call (one
packed string: cheap to parse) and writes them in ONE statement. On failure the ids
go back into the set. Only presence is copied (ONLINE for VERIFIED rows, the schema's
CHECK, else OFFLINE): BUSY is PostgreSQL's own (gateway/repo.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable

import asyncpg
from aiohttp import web
from redis.asyncio import Redis

from core import appkeys, redis_keys
from core.domain import PRESENCE_STATUSES
from gateway import appkeys as gateway_keys
from gateway import live, repo
from gateway.tasks import stop_tasks

log = logging.getLogger("zendo.gateway")

# Rows per pop + UPDATE: small enough that neither the script (which holds Redis) nor
# the parsing here nor one UPDATE runs long; a backlog is drained chunk after chunk.
# 2,000 rows hold Redis 25-30 ms under the README's load (its slow log).
CHUNK = 500


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
        async with pool.acquire() as conn, conn.transaction():
            await repo.write_positions(
                conn,
                ids=ids,
                lats=[float(r[1]) if r[1] else None for r in rows],
                lons=[float(r[2]) if r[2] else None for r in rows],
                ts_ms=[float(r[3]) if r[3] else None for r in rows],
                statuses=[r[4] if r[4] in PRESENCE_STATUSES else "OFFLINE" for r in rows],
                min_move_m=min_move_m,
                max_age_s=max_age_s,
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
