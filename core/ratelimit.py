"""Sliding-window rate limiter on Redis, reusable by any route.

One Lua script per check keeps trimming, counting and recording atomic, so
concurrent requests across processes cannot overshoot the limit.
"""

from __future__ import annotations

import itertools
import math
import secrets
import time

from redis.asyncio import Redis

from core import redis_keys
from core.errors import RateLimited
from core.redispool import run_script

# KEYS[1] window key; ARGV: now_ms, window_ms, limit, member
# Returns 0 when allowed, else milliseconds until a slot frees up.
_SLIDING_WINDOW = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
if count < limit then
  redis.call('ZADD', key, now, ARGV[4])
  redis.call('PEXPIRE', key, window)
  return 0
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
local wait = window - (now - tonumber(oldest[2]))
if wait < 1 then wait = 1 end
return wait
"""


# A window's members only need to differ: a random prefix per process and a counter
# (os.urandom per hit is a system call that also lets another thread take the GIL).
# A hit that NOSCRIPT made send twice reuses its member: counted once.
_MEMBER_PREFIX = secrets.token_hex(4)
_members = itertools.count()


def _member(now_ms: int) -> str:
    return f"{now_ms}:{_MEMBER_PREFIX}{next(_members):x}"


class RateLimiter:
    def __init__(self, redis: Redis, *, scope: str, limit: int, window_s: float) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("limit must be >= 1 and window_s > 0")
        self._redis = redis
        self._scope = scope
        self._limit = limit
        self._window_ms = int(window_s * 1000)
        self._script = redis.register_script(_SLIDING_WINDOW)

    async def hit(self, *subjects: str) -> None:
        """Record one attempt for each subject; raise RateLimited if any is over its limit.

        Each subject (an IP, an account) has its own window; the longest wait wins. One
        round trip for all of them.
        """
        now_ms = int(time.time() * 1000)
        calls = [
            (
                [redis_keys.rate_limit(self._scope, subject)],
                [now_ms, self._window_ms, self._limit, _member(now_ms)],
            )
            for subject in subjects
        ]
        waits = await run_script(self._redis, self._script, calls)
        longest = max((int(wait_ms) for wait_ms in waits), default=0)
        if longest > 0:
            raise RateLimited(math.ceil(longest / 1000))

    async def reset(self, subject: str) -> None:
        await self._redis.delete(redis_keys.rate_limit(self._scope, subject))
