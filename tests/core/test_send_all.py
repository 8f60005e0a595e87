"""`redispool.send_all`, the outbox's round trip to Redis: the replies a redis-py pipeline
gives, errors in place; a killed connection retried; a cancelled call never leaves a
reply behind for the next caller."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, NoScriptError, ResponseError

from core.redispool import WaitingConnectionPool, send_all
from tests.conftest import TEST_REDIS_URL


@pytest.fixture
async def one_connection(redis: Redis) -> AsyncIterator[Redis]:
    """A client whose pool holds a single connection: a call that left a reply unread on
    it would hand that reply to the next call."""
    pool = WaitingConnectionPool.from_url(
        TEST_REDIS_URL,
        max_connections=1,
        timeout=5.0,
        decode_responses=True,
        retry_on_timeout=True,  # as the server's (zendo/resources.py): one retry
    )
    client = Redis.from_pool(pool)
    yield client
    await client.aclose()


def _shape(replies: list[Any]) -> list[Any]:
    return [(type(r), str(r)) if isinstance(r, Exception) else r for r in replies]


async def test_replies_are_a_pipelines_with_each_error_in_its_place(
    one_connection: Redis,
) -> None:
    redis = one_connection
    ok = await redis.script_load("return {KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1}")
    failing = await redis.script_load("return redis.error_reply('no such job')")
    await redis.set("send_all:k", "v")
    commands = [
        ("EVALSHA", ok, 1, "job:1", "été", 41),
        ("EVALSHA", failing, 0),
        ("EVALSHA", "0" * 40, 0),  # not loaded: NOSCRIPT
        ("GET", "send_all:k"),  # (no reply callback, as EVALSHA)
    ]
    replies = await send_all(redis, commands)

    pipe = redis.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    expected = await pipe.execute(raise_on_error=False)
    assert _shape(replies) == _shape(expected)
    assert replies[0] == ["job:1", "été", 42]
    assert isinstance(replies[1], ResponseError) and "no such job" in str(replies[1])
    assert isinstance(replies[2], NoScriptError)
    assert replies[3] == "v"
    assert await send_all(redis, []) == []


async def test_a_connection_killed_between_two_calls_is_replaced_and_the_call_retried(
    one_connection: Redis, redis: Redis
) -> None:
    (own_id,) = await send_all(one_connection, [("CLIENT", "ID")])
    assert await redis.client_kill_filter(_id=own_id) == 1
    replies = await send_all(one_connection, [("ECHO", "again"), ("CLIENT", "ID")])
    assert replies[0] == "again"
    assert replies[1] != own_id  # a new connection answered


async def test_without_a_retry_policy_the_error_is_raised_and_the_next_call_reconnects(
    redis: Redis,
) -> None:
    client = Redis.from_pool(
        WaitingConnectionPool.from_url(
            TEST_REDIS_URL, max_connections=1, timeout=5.0, decode_responses=True
        )
    )
    try:
        (own_id,) = await send_all(client, [("CLIENT", "ID")])
        await redis.client_kill_filter(_id=own_id)
        with pytest.raises(RedisConnectionError):
            await send_all(client, [("ECHO", "lost")])
        assert await send_all(client, [("ECHO", "back")]) == ["back"]
    finally:
        await client.aclose()


async def test_a_call_cancelled_while_waiting_leaves_no_reply_for_the_next_one(
    one_connection: Redis, redis: Redis
) -> None:
    waiting = asyncio.create_task(send_all(one_connection, [("BLPOP", "send_all:never", "0.3")]))
    await asyncio.sleep(0.05)  # sent; its reply comes when the BLPOP times out
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await redis.rpush("send_all:list", "x")
    # The same (only) pooled slot: had the BLPOP's connection been kept, this call
    # would read the BLPOP's late nil as its own reply.
    await asyncio.sleep(0.35)
    assert await send_all(one_connection, [("LPOP", "send_all:list")]) == ["x"]


async def test_a_value_redis_cannot_take_is_refused_and_nothing_is_sent(
    one_connection: Redis,
) -> None:
    with pytest.raises(DataError):
        await send_all(one_connection, [("SET", "send_all:half", "written"), ("ECHO", None)])
    # packed as a whole before the write: the first command was not sent either, and the
    # one pooled connection serves the next call
    assert await send_all(one_connection, [("EXISTS", "send_all:half"), ("ECHO", "ok")]) == [
        0,
        "ok",
    ]
