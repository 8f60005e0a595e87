"""Revoked login sessions: access tokens of a logged-out session stop working at once.

An access token names its session (`sid`, the refresh family). Logging out, or a
refresh token's reuse, revokes the family in PostgreSQL and, in Redis, writes a key for
the remaining lifetime of any access token the family was given (TTL + clock skew), adds
the session to a sorted set (session -> that expiry) and publishes it on a channel.

Every authenticated request and socket checks its session. `RevokedSessions` keeps this
process's copy of the revoked ones, so that a check costs no Redis round trip (one per
request was about a tenth of a status change's CPU): `follow` subscribes to the channel,
then loads the sorted set, and from then on the copy is *synced*. Until it is (starting,
or after the subscription broke, until it is back and reloaded) a check asks Redis, and
fails closed (503) without it. A session revoked on this process is refused here at
once; on another process, once the message arrives (about a millisecond).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final, cast

from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import RedisError

from core import redis_keys
from core.errors import ServiceUnavailable, Unauthorized
from core.principal import Principal
from core.tokens import CLOCK_SKEW_S

log = logging.getLogger("zendo.sessions")

# Back-off bounds (seconds) between two attempts to (re)subscribe.
FOLLOW_BACKOFF_MIN_S: Final = 0.05
FOLLOW_BACKOFF_MAX_S: Final = 2.0
# Expired sessions leave the copy at most this often (ms): a revocation is remembered
# for an access token's lifetime, about 15 minutes.
PURGE_EVERY_MS: Final = 60_000


# redis-py's (de)registration of a connection's connect callback (untyped there).
_OnConnect = Callable[[Callable[[Connection], None]], None]


def _now_ms() -> int:
    return int(time.time() * 1000)


class RevokedSessions:
    """app[appkeys.SESSIONS]: revoke a session, check a principal's (module docstring)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._revoked: dict[str, int] = {}  # session id -> expiry (epoch ms)
        self._purged_at = 0
        self.synced = False

    async def revoke(self, session_id: str, *, access_token_ttl_s: int) -> None:
        """Refuse the session's access tokens from now on, on every process."""
        ttl_s = access_token_ttl_s + CLOCK_SKEW_S
        now = _now_ms()
        expires = now + ttl_s * 1000
        async with self._redis.pipeline(transaction=False) as pipe:  # in this order
            pipe.set(redis_keys.revoked_session(session_id), b"1", ex=ttl_s)
            pipe.zadd(redis_keys.REVOKED_SESSIONS, {session_id: expires})
            pipe.zremrangebyscore(redis_keys.REVOKED_SESSIONS, "-inf", now)
            pipe.publish(redis_keys.REVOCATIONS_CHANNEL, f"{session_id} {expires}")
            await pipe.execute()
        self._add(session_id, expires)

    async def check(self, principal: Principal) -> Principal:
        """`principal`, or 401 `session_revoked` when its session was logged out."""
        sid = principal.session_id
        if sid is None:
            return principal
        if self.synced:
            expires = self._revoked.get(sid)
            revoked = expires is not None and expires > _now_ms()
        else:
            revoked = await self._ask_redis(sid)
        if revoked:
            raise Unauthorized("This session was logged out", code="session_revoked")
        return principal

    async def _ask_redis(self, sid: str) -> bool:
        try:
            return bool(await self._redis.exists(redis_keys.revoked_session(sid)))
        except RedisError as exc:
            raise ServiceUnavailable(
                "Sessions cannot be checked right now; retry shortly", retry_after_s=1
            ) from exc

    def _add(self, session_id: str, expires: int) -> None:
        now = _now_ms()
        if now - self._purged_at >= PURGE_EVERY_MS:
            self._purge(now)
        if expires > now:
            self._revoked[session_id] = max(expires, self._revoked.get(session_id, 0))

    def _purge(self, now: int) -> None:
        self._revoked = {sid: exp for sid, exp in self._revoked.items() if exp > now}
        self._purged_at = now

    def _load(self, entries: list[tuple[str, float]]) -> None:
        self._purge(_now_ms())
        for sid, expires in entries:
            self._add(sid, int(expires))

    def _on_message(self, data: str) -> None:
        sid, _, expires = data.partition(" ")
        try:
            self._add(sid, int(expires))
        except ValueError:
            log.warning("ignored a malformed revocation message: %r", data[:100])

    def _reconnected(self, _connection: Connection) -> None:
        self.synced = False  # checks ask Redis until `follow` reloaded the set

    async def _reload(self) -> None:
        """Subscribed first, then loaded: a revocation is in the set or arrives."""
        self.synced = False
        entries = await self._redis.zrangebyscore(
            redis_keys.REVOKED_SESSIONS, _now_ms(), "+inf", withscores=True
        )
        self._load(cast("list[tuple[str, float]]", entries))  # decoded replies
        self.synced = True

    async def follow(self) -> None:
        """Keep the copy synced until cancelled (stop it with `gateway.tasks.stop_tasks`:
        redis-py can swallow a cancellation); on a Redis failure, check through Redis
        again and resubscribe with back-off."""
        backoff = FOLLOW_BACKOFF_MIN_S
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            connection: Connection | None = None
            try:
                await pubsub.subscribe(redis_keys.REVOCATIONS_CHANNEL)
                # redis-py reconnects and resubscribes a pub/sub connection by itself:
                # what was published meanwhile is lost, so each (re)connection reloads
                connection = pubsub.connection
                assert connection is not None
                register: _OnConnect = connection.register_connect_callback  # untyped
                register(self._reconnected)
                await self._reload()
                backoff = FOLLOW_BACKOFF_MIN_S
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if not self.synced:
                        await self._reload()
                    if message is not None and message.get("type") == "message":
                        self._on_message(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("revoked sessions: %s; checking through Redis meanwhile", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, FOLLOW_BACKOFF_MAX_S)
            finally:
                self.synced = False
                if connection is not None:
                    deregister: _OnConnect = connection.deregister_connect_callback  # untyped
                    deregister(self._reconnected)
                aclose: Callable[[], Awaitable[None]] = pubsub.aclose  # untyped in redis-py
                try:
                    await asyncio.shield(aclose())
                except Exception:  # closing a connection that already broke can fail too
                    pass
