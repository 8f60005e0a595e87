"""One cleanup_ctx per shared resource, in dependency order: PostgreSQL, then Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from redis.asyncio import Redis

from dispatch import appkeys
from dispatch.db import create_pool
from dispatch.ratelimit import RateLimiter


async def pg_pool_ctx(app: web.Application) -> AsyncIterator[None]:
    pool = await create_pool(app[appkeys.SETTINGS].database_url)
    app[appkeys.PG_POOL] = pool
    try:
        yield
    finally:
        await pool.close()


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[appkeys.SETTINGS]
    redis = Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        health_check_interval=10,
        socket_connect_timeout=2,
        socket_keepalive=True,
        retry_on_timeout=True,
    )
    app[appkeys.REDIS] = redis
    app[appkeys.LOGIN_LIMITER] = RateLimiter(
        redis, scope="login", limit=settings.login_attempts_per_min, window_s=60
    )
    try:
        yield
    finally:
        await redis.aclose()
