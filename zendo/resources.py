"""One cleanup_ctx per shared resource, in dependency order: PostgreSQL, Redis, then
this process's copy of the revoked sessions (kept by a task on Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web
from redis.asyncio import Redis

from core import appkeys
from core.db import create_pool
from core.ratelimit import RateLimiter
from core.redispool import WaitingConnectionPool
from core.sessions import RevokedSessions
from dispatch import appkeys as dispatch_keys
from dispatch.interventions.service import START_CODE_GUESSES, START_CODE_WINDOW_S
from gateway.tasks import stop_tasks

PG_CLOSE_TIMEOUT_S = 10.0
REDIS_MAX_CONNECTIONS = 256
REDIS_POOL_TIMEOUT_S = 5.0


async def pg_pool_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[appkeys.SETTINGS]
    pool = await create_pool(
        settings.database_url,
        min_size=min(settings.pg_pool_min_size, settings.pg_pool_max_size),
        max_size=settings.pg_pool_max_size,
    )
    app[appkeys.PG_POOL] = pool
    try:
        yield
    finally:
        # A connection lost mid-query can keep a graceful close waiting forever.
        try:
            await asyncio.wait_for(pool.close(), PG_CLOSE_TIMEOUT_S)
        except TimeoutError:
            pool.terminate()


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[appkeys.SETTINGS]
    # A burst waits briefly for a connection instead of failing (redis-py's default
    # pool raises once its connections are busy), at no cost per command while one is
    # free (core/redispool.py).
    pool = WaitingConnectionPool.from_url(
        settings.redis_url,
        max_connections=REDIS_MAX_CONNECTIONS,
        timeout=REDIS_POOL_TIMEOUT_S,
        decode_responses=True,
        health_check_interval=10,
        socket_connect_timeout=2,
        # No per-command timeout: redis-py wraps every send in asyncio.wait_for when one
        # is set, a Task per command, the largest single cost of a location fix here.
        # A Redis that dies closes the connections (errors, not hangs), keepalive finds a
        # vanished host, and a process whose requests pile up is shed by admission.
        socket_timeout=None,
        socket_keepalive=True,
        retry_on_timeout=True,
        driver_info=None,  # no CLIENT SETINFO (a round trip and a metadata lookup) per connection
    )
    redis = Redis.from_pool(pool)
    app[appkeys.REDIS] = redis
    app[dispatch_keys.LOGIN_LIMITER] = RateLimiter(
        redis, scope="login", limit=settings.login_attempts_per_min, window_s=60
    )
    app[dispatch_keys.REGISTRATION_LIMITER] = RateLimiter(
        redis, scope="register", limit=settings.registrations_per_min, window_s=60
    )
    app[dispatch_keys.START_CODE_LIMITER] = RateLimiter(
        redis, scope="start_code", limit=START_CODE_GUESSES, window_s=START_CODE_WINDOW_S
    )
    app[appkeys.SESSIONS] = RevokedSessions(redis)
    try:
        yield
    finally:
        await redis.aclose()


async def sessions_ctx(app: web.Application) -> AsyncIterator[None]:
    """Keeps app[appkeys.SESSIONS] synced (core/sessions.py) while the app runs."""
    task = asyncio.get_running_loop().create_task(
        app[appkeys.SESSIONS].follow(), name="revoked-sessions"
    )
    try:
        yield
    finally:
        await stop_tasks(task)
