"""Presence upkeep: the registry refresh (and re-hydration after Redis data loss) and
the offline sweeper (expired leases and stale fixes).

Leases: `live:leases` maps artisan id -> epoch ms at which they go OFFLINE. A
process holding one of their sockets keeps pushing it forward (registry TTL +
grace); when the last socket anywhere closes it is set to now + grace; when a
process dies its leases simply stop moving. The sweeper, in every process, turns
expired leases into OFFLINE with an atomic script (idempotent across processes).

Stale fixes: ONLINE needs a recent fix. `live:fresh` maps each ONLINE artisan to the
time of their last fix (kept by the live-state scripts); the sweeper turns those whose
last fix is older than GatewayConfig.recent_fix_s (default 120 s) OFFLINE, even if their
socket is still open. Their next fix makes them ONLINE again (unless they asked to be
OFFLINE or are not verified).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import cast

from aiohttp import web
from asyncpg import Record

from core import redis_keys
from gateway import appkeys as gateway_keys
from gateway import live, repo
from gateway.node import Gateway
from gateway.tasks import stop_tasks

log = logging.getLogger("zendo.gateway")

# Artisans re-hydrated per pipeline after Redis lost its data (one round trip each).
REHYDRATE_CHUNK = 500


async def check_epoch(gateway: Gateway) -> bool:
    """True when Redis lost its data since we last looked (restart without persistence)."""
    redis = gateway.redis
    await redis.set(redis_keys.LIVE_EPOCH, secrets.token_hex(8), nx=True)
    epoch = cast("str | None", await redis.get(redis_keys.LIVE_EPOCH))  # decoded replies
    lost = gateway.epoch is not None and epoch != gateway.epoch
    gateway.epoch = epoch
    return lost


async def rehydrate(gateway: Gateway) -> None:
    """Write back the live profile of every artisan connected here (from PostgreSQL):
    one pipeline of CONNECT calls per `REHYDRATE_CHUNK` artisans."""
    artisan_ids = [u for u, ss in gateway.sessions.items() if any(s.is_artisan for s in ss)]
    if not artisan_ids:
        return
    async with gateway.pool.acquire() as conn:
        rows = await repo.live_profiles(conn, artisan_ids=[uuid.UUID(a) for a in artisan_ids])
    for start in range(0, len(rows), REHYDRATE_CHUNK):
        part = rows[start : start + REHYDRATE_CHUNK]

        def fill(calls: live.ScriptCalls, part: Sequence[Record] = part) -> list[live.Script]:
            live.queue_connects(calls, gateway.redis, part)
            return [live.CONNECT]

        replies = await live.run_pipeline(gateway.redis, fill)
        failed = [r for r in replies if isinstance(r, Exception)]
        if failed:
            raise failed[0]
    log.info("re-hydrated live state of %d artisans after Redis data loss", len(rows))


async def refresh_loop(gateway: Gateway) -> None:
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(gateway.resync.wait(), gateway.config.registry_refresh_s)
        gateway.resync.clear()
        try:
            if await check_epoch(gateway):
                await rehydrate(gateway)
            await gateway.announce_all()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("registry refresh failed: %s", exc)
            await asyncio.sleep(min(1.0, gateway.config.registry_refresh_s))
            gateway.resync.set()


async def sweep_once(gateway: Gateway, limit: int = 500) -> int:
    """OFFLINE every artisan whose presence lease ran out; returns how many. One script
    call per `limit` leases (after a mass disconnect, thousands end together)."""
    total = 0
    while True:
        ended, offline = await live.expire_leases(gateway.redis, limit)
        total += offline
        if ended < limit:
            return total


async def sweep_stale(gateway: Gateway, limit: int = 1000) -> int:
    """OFFLINE every ONLINE artisan without a fix in the last `recent_fix_s`."""
    recent_ms = int(gateway.config.recent_fix_s * 1000)
    total = 0
    while (count := await live.expire_stale(gateway.redis, recent_ms, limit)) > 0:
        total += count
        if count < limit:
            break
    return total


async def sweep_loop(gateway: Gateway) -> None:
    config = gateway.config
    interval = min(
        config.sweep_interval_s, gateway.settings.ws_offline_grace_s / 4, config.recent_fix_s / 4
    )
    interval = max(0.05, interval)
    while True:
        await asyncio.sleep(interval)
        try:
            await sweep_once(gateway)
            await sweep_stale(gateway)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("presence sweep failed: %s", exc)


async def presence_ctx(app: web.Application) -> AsyncIterator[None]:
    gateway: Gateway = app[gateway_keys.GATEWAY]
    with contextlib.suppress(Exception):
        await check_epoch(gateway)
    tasks = [
        asyncio.create_task(refresh_loop(gateway), name="gateway-registry"),
        asyncio.create_task(sweep_loop(gateway), name="gateway-sweeper"),
    ]
    yield
    await stop_tasks(*tasks)
