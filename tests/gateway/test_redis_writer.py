"""gateway/redis_writer.py: commands written without waiting for their replies, the replies
read later and matched with their commands, against the real Redis."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import uvloop
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from core import appkeys, redis_keys
from core.effects import MarkBusy
from gateway import appkeys as gateway_keys
from gateway import live
from gateway.redis_writer import RedisWriter
from tests.conftest import TEST_REDIS_URL

SET_IF = "return redis.call('SET', KEYS[1], ARGV[1])"


class Errors:
    """An `on_error` handler that keeps what it is given."""

    def __init__(self) -> None:
        self.got: list[Exception] = []

    def __call__(self, exc: Exception) -> None:
        self.got.append(exc)


@pytest.fixture
async def writer(redis: Redis) -> AsyncIterator[RedisWriter]:
    # Replies are read only when the test says so (`read_now`) or an hour later.
    w = RedisWriter(lambda: redis, read_every_s=3600.0)
    await w.start()
    assert w.ready
    yield w
    await w.close()


async def test_commands_run_at_once_and_their_replies_are_read_later(
    redis: Redis, writer: RedisWriter
) -> None:
    key = f"w:{uuid.uuid4()}"
    errors = Errors()
    assert writer.send([("SET", key, "1"), ("INCR", key)], [None, None], [errors, errors])
    await until(lambda: redis.get(key), "2")
    # Redis has answered both; the replies wait, unread, until the next read.
    assert writer.due == 2
    writer.read_now()
    await until(lambda: _due(writer), 0)
    assert errors.got == []
    assert writer.sent == 2 and writer.failed == 0


async def test_an_error_goes_to_its_own_command_and_the_next_one_still_runs(
    redis: Redis, writer: RedisWriter
) -> None:
    key, other = f"w:{uuid.uuid4()}", f"w:{uuid.uuid4()}"
    await redis.set(key, "a string")
    first, second = Errors(), Errors()
    assert writer.send(
        [("HSET", key, "f", "v"), ("SET", other, "ok")], [None, None], [first, second]
    )
    writer.read_now()
    await until(lambda: _due(writer), 0)
    assert len(first.got) == 1 and "WRONGTYPE" in str(first.got[0])
    assert second.got == []
    assert await redis.get(other) == "ok"
    assert writer.failed == 1


async def test_a_script_is_loaded_on_the_connection_before_its_first_call(
    redis: Redis, writer: RedisWriter
) -> None:
    """And after a SCRIPT FLUSH the call that got NOSCRIPT is sent again once read."""
    sha = await redis.script_load(SET_IF)
    await redis.script_flush()  # Redis without the script, the connection open
    key = f"w:{uuid.uuid4()}"
    errors = Errors()
    assert writer.send([("EVALSHA", sha, 1, key, "first")], [SET_IF], [errors])
    await until(lambda: redis.get(key), "first")
    await redis.script_flush()
    assert writer.send([("EVALSHA", sha, 1, key, "second")], [SET_IF], [errors])
    writer.read_now()  # reads NOSCRIPT: loads the script and sends the call again
    await asyncio.sleep(0.05)
    writer.read_now()
    await until(lambda: redis.get(key), "second")
    assert errors.got == []


async def test_a_lost_connection_fails_what_is_due_and_the_writer_opens_a_new_one(
    redis: Redis, writer: RedisWriter, caplog: pytest.LogCaptureFixture
) -> None:
    key = f"w:{uuid.uuid4()}"
    errors = Errors()
    assert writer.send([("SET", key, "before")], [None], [errors])
    await until(lambda: redis.get(key), "before")
    with caplog.at_level(logging.WARNING, logger="zendo.gateway"):
        assert await redis.client_kill_filter(skipme=True, _type="normal") >= 1
        # Reading paused, the writer learns of the loss at its next read or write: a
        # command written meanwhile never gets its reply, and is reported failed.
        assert writer.send([("SET", key, "in the void")], [None], [errors])

        async def read_then_count() -> int:
            writer.read_now()  # as the timer does, READ_EVERY_S after a command
            await asyncio.sleep(0.01)
            return len(errors.got)

        await until(read_then_count, 1)
        assert isinstance(errors.got[0], ConnectionError)
        assert not writer.send([("SET", key, "x")], [None], [errors])  # the caller's turn
        await until(lambda: _ready(writer), True)
    assert await redis.get(key) == "before"
    assert writer.send([("SET", key, "after")], [None], [errors])
    await until(lambda: redis.get(key), "after")
    assert "redis writer" in caplog.text


async def test_drained_returns_once_every_command_sent_has_run(
    redis: Redis, writer: RedisWriter
) -> None:
    assert await writer.drained()  # nothing due: at once
    key, other = f"w:{uuid.uuid4()}", f"w:{uuid.uuid4()}"
    await redis.set(other, "a string")
    errors = Errors()
    assert writer.send(
        [("SET", key, "1"), ("LPUSH", other, "x"), ("INCR", key)],
        [None, None, None],
        [errors, errors, errors],
    )
    assert await writer.drained()
    assert writer.due == 0
    assert len(errors.got) == 1 and "WRONGTYPE" in str(errors.got[0])
    assert await redis.get(key) == "2"  # sent after `drained`: runs after them


async def test_drained_says_so_when_redis_has_not_answered_in_time(
    redis: Redis, writer: RedisWriter
) -> None:
    key = f"w:{uuid.uuid4()}"
    # Redis holds this connection's next reply for a second (an empty list, blocking)
    assert writer.send([("BLPOP", key, "1"), ("SET", key, "after")], [None, None], [None, None])
    assert not await writer.drained(0.1)
    assert writer.due == 2
    assert await writer.drained(5.0)
    assert writer.due == 0
    assert await redis.get(key) == "after"


async def test_close_reads_the_replies_due(redis: Redis) -> None:
    writer = RedisWriter(lambda: redis, read_every_s=3600.0)
    await writer.start()
    key = f"w:{uuid.uuid4()}"
    await redis.set(key, "a string")
    errors = Errors()
    assert writer.send([("LPUSH", key, "x")], [None], [errors])
    await writer.close()
    assert len(errors.got) == 1 and "WRONGTYPE" in str(errors.got[0])
    assert not writer.ready


async def test_on_uvloop_too(redis: Redis) -> None:
    """The server runs on uvloop, whose transports are not asyncio's classes: the writer
    takes the connection over there too, and pauses its reading."""
    key = f"w:{uuid.uuid4()}"

    async def scenario() -> tuple[bool, int, list[Exception]]:
        client = Redis.from_url(TEST_REDIS_URL, decode_responses=True)
        writer = RedisWriter(lambda: client, read_every_s=3600.0)
        errors = Errors()
        try:
            await writer.start()
            sent = writer.send(
                [("SET", key, "uv"), ("HSET", key, "f", "v")], [None, None], [errors, errors]
            )
            await until(lambda: client.get(key), "uv")
            await asyncio.sleep(0.05)
            unread = writer.due  # answered by Redis, not read
            writer.read_now()
            await until(lambda: _due(writer), 0)
        finally:
            await writer.close()
            await client.aclose()
        return sent, unread, errors.got

    sent, unread, errors = await asyncio.to_thread(uvloop.run, scenario())
    assert sent and unread == 2
    assert len(errors) == 1 and "WRONGTYPE" in str(errors[0])


async def test_the_outbox_writes_live_state_and_remote_pushes_through_the_writer(
    gw: TestClient[Any, Any],
) -> None:
    redis = gw.app[appkeys.REDIS]
    writer = gw.app[gateway_keys.GATEWAY].writer
    assert writer.ready  # the app waited for its connection at start
    aid, client = str(uuid.uuid4()), uuid.uuid4()
    await live.connect_artisan(
        redis, aid, specialty="PLUMBER", level="STANDARD", rating=4.0, verified=True
    )
    await redis.zadd(redis_keys.user_nodes(str(client)), {"other": live.now_ms() + 60_000})
    sent = writer.sent
    await gw.app[appkeys.LIVE_STATE].apply([MarkBusy(uuid.UUID(aid))], [(client, b"{}")])
    assert writer.sent == sent + 2  # the publish and the change, nothing awaited
    assert await writer.drained()  # a read sent at once could run before them
    assert await redis.hget(redis_keys.live_artisan(aid), "current_status") == "BUSY"


async def until(check: Callable[[], Awaitable[Any]], expected: Any, within: float = 3.0) -> None:
    """Poll `check()` until it returns `expected`; AssertionError after `within` s."""
    deadline = asyncio.get_running_loop().time() + within
    while (value := await check()) != expected:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{expected!r} not reached within {within}s (last: {value!r})")
        await asyncio.sleep(0.02)


async def _due(writer: RedisWriter) -> int:
    return writer.due


async def _ready(writer: RedisWriter) -> bool:
    return writer.ready
