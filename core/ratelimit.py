"""Sliding-window rate limiter on Redis, reusable by any route.

One Lua script per check keeps trimming, counting and recording atomic, so
concurrent requests across processes cannot overshoot the limit.
"""

from __future__ import annotations

import math
import secrets
import time

from redis.asyncio import Redis

from core import redis_keys
from core.errors import RateLimited

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

        Each subject (an IP, an account) has its own window; the longest wait wins.
        """
        now_ms = int(time.time() * 1000)
        waits = []
        for subject in subjects:
            member = f"{now_ms}:{secrets.token_hex(4)}"
            wait_ms = await self._script(
                keys=[redis_keys.rate_limit(self._scope, subject)],
                args=[now_ms, self._window_ms, self._limit, member],
            )
            waits.append(int(wait_ms))
        longest = max(waits, default=0)
        if longest > 0:
            raise RateLimited(math.ceil(longest / 1000))

    async def reset(self, subject: str) -> None:
        await self._redis.delete(redis_keys.rate_limit(self._scope, subject))
