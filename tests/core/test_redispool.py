"""WaitingConnectionPool against the real Redis: waits in order, times out, loses no turn;
its connections pack commands in C to the bytes redis-py packs in Python."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError

from core.redispool import (
    PackedConnection,
    PackedSSLConnection,
    PackedUnixDomainSocketConnection,
    WaitingConnectionPool,
)
from tests.conftest import TEST_REDIS_URL


def _pool(max_connections: int, wait_s: float = 5.0) -> WaitingConnectionPool:
    pool = WaitingConnectionPool.from_url(
        TEST_REDIS_URL, max_connections=max_connections, timeout=wait_s
    )
    assert isinstance(pool, WaitingConnectionPool)
    return pool


@pytest.fixture
async def pool_of_one() -> AsyncIterator[WaitingConnectionPool]:
    pool = _pool(1)
    yield pool
    await pool.disconnect()


async def _turns() -> None:
    """Let every ready task run (a few loop passes, no clock)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_callers_past_the_limit_wait_and_are_served_first_come_first_served(
    pool_of_one: WaitingConnectionPool,
) -> None:
    held = await pool_of_one.get_connection()
    order: list[int] = []

    async def take(n: int) -> AbstractConnection:
        conn = await pool_of_one.get_connection()
        order.append(n)
        return conn

    first = asyncio.create_task(take(1))
    await _turns()
    second = asyncio.create_task(take(2))
    await _turns()
    assert not first.done() and not second.done()

    await pool_of_one.release(held)
    conn = await first
    await _turns()
    assert conn is held  # the one connection, handed on
    assert not second.done()
    await pool_of_one.release(conn)
    await pool_of_one.release(await second)
    assert order == [1, 2]


async def test_a_caller_arriving_after_a_release_queues_behind_the_woken_one(
    pool_of_one: WaitingConnectionPool,
) -> None:
    held = await pool_of_one.get_connection()
    waiting = asyncio.create_task(pool_of_one.get_connection())
    await _turns()
    await pool_of_one.release(held)  # wakes `waiting`, which has not run yet
    newcomer = asyncio.create_task(pool_of_one.get_connection())
    got = await waiting
    await _turns()
    assert not newcomer.done()
    await pool_of_one.release(got)
    await pool_of_one.release(await newcomer)


async def test_waiting_past_the_timeout_raises_connection_error() -> None:
    pool = _pool(1, wait_s=0.05)
    held = await pool.get_connection()
    try:
        with pytest.raises(RedisConnectionError, match="No connection available"):
            await pool.get_connection()
        assert not pool._waiters  # nobody left queued
    finally:
        await pool.release(held)
        await pool.disconnect()


async def test_a_woken_caller_that_is_cancelled_passes_its_turn_on(
    pool_of_one: WaitingConnectionPool,
) -> None:
    held = await pool_of_one.get_connection()
    woken = asyncio.create_task(pool_of_one.get_connection())
    await _turns()
    nxt = asyncio.create_task(pool_of_one.get_connection())
    await _turns()
    await pool_of_one.release(held)  # wakes `woken` ...
    woken.cancel()  # ... which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await woken
    conn = await asyncio.wait_for(nxt, timeout=2)  # the turn was not lost
    await pool_of_one.release(conn)


async def test_a_queued_caller_that_is_cancelled_leaves_the_queue(
    pool_of_one: WaitingConnectionPool,
) -> None:
    held = await pool_of_one.get_connection()
    gone = asyncio.create_task(pool_of_one.get_connection())
    await _turns()
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert not pool_of_one._waiters
    await pool_of_one.release(held)
    conn = await pool_of_one.get_connection()  # free again, at once
    await pool_of_one.release(conn)


async def test_many_commands_share_few_connections() -> None:
    pool = _pool(2)
    redis = Redis.from_pool(pool)
    try:
        answers = await asyncio.gather(*(redis.incr("pool-test") for _ in range(200)))
        assert sorted(answers) == list(range(1, 201))
        assert len(pool._in_use_connections) == 0
        assert len(pool._available_connections) <= 2
    finally:
        await redis.delete("pool-test")
        await redis.aclose()


async def test_callers_queued_when_the_pool_is_reset_are_served_by_the_next_arrival(
    pool_of_one: WaitingConnectionPool,
) -> None:
    forgotten = await pool_of_one.get_connection()  # held; then forgotten by the reset
    queued = asyncio.create_task(pool_of_one.get_connection())
    await _turns()
    pool_of_one.reset()  # type: ignore[no-untyped-call]  # frees the slot without a release
    await forgotten.disconnect()
    newcomer = asyncio.create_task(pool_of_one.get_connection())
    conn = await asyncio.wait_for(queued, timeout=2)  # first come, first served
    await _turns()
    assert not newcomer.done()
    await pool_of_one.release(conn)
    await pool_of_one.release(await asyncio.wait_for(newcomer, timeout=2))


_ARGS: list[tuple[Any, ...]] = [
    ("SET", "key", "value"),
    ("CONFIG GET", "maxmemory"),  # a command name of two words goes as two arguments
    (b"HSET", b"k", b"f", memoryview(b"v"), bytearray(b"w")),
    ("EVALSHA", "0" * 40, 2, "a", "b", -1, 2**70, 0.1 + 0.2, 1e20, -0.0, 48.8566),
    ("SET", "clé", "été ✓ \u2028" + "x" * 10_000),  # past redis-py's 6,000-byte cutoff
]


def test_commands_are_packed_in_c_to_the_bytes_redis_py_packs() -> None:
    packed = PackedConnection()
    plain = Connection()
    for args in _ARGS:
        assert b"".join(packed.pack_command(*args)) == b"".join(plain.pack_command(*args)), args
    assert b"".join(packed.pack_commands(_ARGS)) == b"".join(plain.pack_commands(_ARGS))


def test_a_value_redis_cannot_take_is_refused_before_anything_is_sent() -> None:
    bad_values: tuple[Any, ...] = (None, True, object())
    for bad in bad_values:
        with pytest.raises(DataError):
            PackedConnection().pack_command("SET", "key", bad)
        with pytest.raises(DataError):  # as redis-py's own packer says
            Connection().pack_command("SET", "key", bad)


def test_every_url_scheme_gets_the_packed_connection_of_its_kind() -> None:
    kinds = {
        "redis://127.0.0.1:6379/1": PackedConnection,
        "rediss://127.0.0.1:6380/1": PackedSSLConnection,
        "unix:///tmp/redis.sock?db=1": PackedUnixDomainSocketConnection,
    }
    for url, kind in kinds.items():
        pool = WaitingConnectionPool.from_url(url, timeout=1.0)
        assert pool.connection_class is kind, url


async def test_the_pool_s_connections_talk_to_redis(pool_of_one: WaitingConnectionPool) -> None:
    redis = Redis.from_pool(pool_of_one)
    value = "été ✓ " + "x" * 10_000
    assert await redis.set("redispool:packed", value, ex=10)
    read = await redis.get("redispool:packed")
    assert isinstance(read, bytes) and read.decode() == value
    assert await redis.incrbyfloat("redispool:float", 0.1 + 0.2) == pytest.approx(0.3)
    await redis.delete("redispool:packed", "redispool:float")
