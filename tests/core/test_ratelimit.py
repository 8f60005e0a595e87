from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from core.errors import RateLimited
from core.ratelimit import RateLimiter


async def test_sliding_window_limits_and_sets_retry_after(redis: Redis) -> None:
    limiter = RateLimiter(redis, scope="t", limit=3, window_s=60)
    for _ in range(3):
        await limiter.hit("ip:1")
    with pytest.raises(RateLimited) as info:
        await limiter.hit("ip:1")
    assert info.value.retry_after_s is not None
    assert 1 <= info.value.retry_after_s <= 60
    await limiter.hit("ip:2")  # another subject has its own window


async def test_concurrent_hits_never_overshoot(redis: Redis) -> None:
    limiter = RateLimiter(redis, scope="t", limit=5, window_s=60)
    results = await asyncio.gather(
        *(limiter.hit("acct") for _ in range(20)), return_exceptions=True
    )
    assert sum(r is None for r in results) == 5
    assert all(isinstance(r, RateLimited) for r in results if r is not None)


async def test_window_slides(redis: Redis) -> None:
    limiter = RateLimiter(redis, scope="t", limit=1, window_s=0.2)
    await limiter.hit("x")
    with pytest.raises(RateLimited):
        await limiter.hit("x")
    await asyncio.sleep(0.25)
    await limiter.hit("x")


async def test_any_subject_over_its_limit_blocks(redis: Redis) -> None:
    limiter = RateLimiter(redis, scope="t", limit=2, window_s=60)
    await limiter.hit("ip:a", "acct:z")
    await limiter.hit("ip:b", "acct:z")
    with pytest.raises(RateLimited):
        await limiter.hit("ip:c", "acct:z")


async def test_after_redis_lost_its_scripts_each_subject_is_counted_once(redis: Redis) -> None:
    limiter = RateLimiter(redis, scope="t", limit=2, window_s=60)
    await limiter.hit("ip:a", "acct:z")
    await redis.script_flush()  # as after a Redis restart: the next call is NOSCRIPT
    await limiter.hit("ip:b", "acct:z")  # loaded and sent again
    with pytest.raises(RateLimited):  # acct:z has had its two, not three or four
        await limiter.hit("ip:c", "acct:z")
    await limiter.hit("ip:b")  # ip:b was counted once: one more is allowed
    with pytest.raises(RateLimited):
        await limiter.hit("ip:b")
