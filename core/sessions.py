"""Revoked login sessions: access tokens of a logged-out session stop working at once.

An access token names its session (`sid`, the refresh family). Logging out, or a
refresh token's reuse, revokes the family in PostgreSQL and writes a Redis key for the
remaining lifetime of any access token the family was given (TTL + clock skew); every
authenticated request and socket checks it. Without Redis the check fails closed (503).
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core import redis_keys
from core.errors import ServiceUnavailable, Unauthorized
from core.principal import Principal
from core.tokens import CLOCK_SKEW_S


async def revoke(redis: Redis, session_id: str, *, access_token_ttl_s: int) -> None:
    await redis.set(
        redis_keys.revoked_session(session_id), b"1", ex=access_token_ttl_s + CLOCK_SKEW_S
    )


async def is_revoked(redis: Redis, principal: Principal) -> bool:
    if principal.session_id is None:
        return False
    try:
        return bool(await redis.exists(redis_keys.revoked_session(principal.session_id)))
    except RedisError as exc:
        raise ServiceUnavailable(
            "Sessions cannot be checked right now; retry shortly", retry_after_s=1
        ) from exc


async def check(redis: Redis, principal: Principal) -> Principal:
    """`principal`, or 401 `session_revoked` when its session was logged out."""
    if await is_revoked(redis, principal):
        raise Unauthorized("This session was logged out", code="session_revoked")
    return principal
