"""Closed sockets' registry cleanups, batched: a storm of closes costs a few Redis calls,
every departed user leaves the registry (artisans start their grace), and a user back
on this node before the flush keeps their entry. Against the real Redis."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from redis.asyncio import Redis

from core import redis_keys
from gateway import live
from gateway.departures import Departures

NODE = "node-a"
GRACE_MS = 30_000


async def _register(redis: Redis, user_ids: list[str]) -> None:
    far = live.now_ms() + 600_000
    async with redis.pipeline(transaction=False) as pipe:
        for user_id in user_ids:
            pipe.zadd(redis_keys.user_nodes(user_id), {NODE: far, "node-b": far})
        await pipe.execute()


def _counting_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts DISCONNECT_MANY calls (and their users) while they still run on Redis."""
    calls: list[int] = []
    script = live.DISCONNECT_MANY

    async def counted(redis: Redis, args: list[Any], keys: tuple[str, ...] = ()) -> Any:
        calls.append(str(args[-1]).count("\n"))
        return await script(redis, args, keys)

    monkeypatch.setattr(live, "DISCONNECT_MANY", counted)
    return calls


async def test_a_storm_of_closes_is_a_few_calls_and_clears_every_user(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _counting_calls(monkeypatch)
    users = [f"user-{i}" for i in range(3000)]
    await _register(redis, users)
    here: set[str] = set()
    departures = Departures(
        lambda: redis, node_id=NODE, grace_ms=GRACE_MS, is_here=here.__contains__, chunk=2000
    )
    for i, user_id in enumerate(users):
        departures.add(user_id, is_artisan=i % 2 == 0)
    await departures.stop()
    assert sorted(calls) == [1000, 2000]
    for user_id in users[:50]:  # this node left; the other node's entry stays
        assert await redis.zrange(redis_keys.user_nodes(user_id), 0, -1) == ["node-b"]
    leases = await redis.zrange(redis_keys.PRESENCE_LEASES, 0, -1)
    assert leases == []  # node-b still holds every user: no grace starts


async def test_an_artisan_gone_from_every_node_starts_the_grace(redis: Redis) -> None:
    await redis.zadd(redis_keys.user_nodes("artisan-1"), {NODE: live.now_ms() + 600_000})
    await redis.zadd(redis_keys.user_nodes("client-1"), {NODE: live.now_ms() + 600_000})
    departures = Departures(lambda: redis, node_id=NODE, grace_ms=GRACE_MS, is_here=lambda _: False)
    before = live.now_ms()
    departures.add("artisan-1", is_artisan=True)
    departures.add("client-1", is_artisan=False)
    await departures.stop()
    assert await redis.zrange(redis_keys.user_nodes("artisan-1"), 0, -1) == []
    leases = cast(  # decoded replies, with their scores
        "list[tuple[str, float]]",
        await redis.zrange(redis_keys.PRESENCE_LEASES, 0, -1, withscores=True),
    )
    assert [user for user, _ in leases] == ["artisan-1"]
    assert before + GRACE_MS <= leases[0][1] <= live.now_ms() + GRACE_MS


async def test_a_user_back_before_the_flush_keeps_their_entry(redis: Redis) -> None:
    await _register(redis, ["back", "gone"])
    here: set[str] = set()
    departures = Departures(
        lambda: redis, node_id=NODE, grace_ms=GRACE_MS, is_here=here.__contains__, linger_s=0.05
    )
    departures.add("back", is_artisan=True)
    departures.add("gone", is_artisan=True)
    here.add("back")  # reconnected to this node within the linger
    await departures.stop()
    assert NODE in await redis.zrange(redis_keys.user_nodes("back"), 0, -1)
    assert NODE not in await redis.zrange(redis_keys.user_nodes("gone"), 0, -1)
    assert departures.drain() == []


async def test_a_redis_failure_is_logged_and_the_next_batch_still_goes(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    await _register(redis, ["later"])
    broken = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    target = [broken]
    departures = Departures(
        lambda: target[0], node_id=NODE, grace_ms=GRACE_MS, is_here=lambda _: False
    )
    departures.add("lost", is_artisan=True)
    await departures.stop(timeout_s=10)
    assert "registry cleanup of 1 user(s) failed" in caplog.text
    target[0] = redis
    departures.add("later", is_artisan=False)
    await departures.stop()
    assert await redis.zrange(redis_keys.user_nodes("later"), 0, -1) == ["node-b"]
    await broken.aclose()
    await asyncio.sleep(0)
