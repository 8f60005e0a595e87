"""gateway/stream_tail.py: the mirror's XREAD read off the socket, against the real Redis
(and, for a Redis that goes silent, a server that stops answering)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from gateway import stream_tail
from gateway.stream_tail import StreamLost, close_tail, open_tail
from tests.conftest import TEST_REDIS_URL


@pytest.mark.parametrize("protocol", [2, 3])
async def test_entries_after_an_id_in_order_and_none_when_the_block_runs_out(
    redis: Redis, protocol: int
) -> None:
    """Both protocol versions (the pool's), a batch bounded by COUNT, non-ASCII text."""
    client = Redis.from_url(TEST_REDIS_URL, decode_responses=True, protocol=protocol)
    key = f"test:stream:{uuid.uuid4()}"
    first = str(await redis.xadd(key, {"k": "s", "d": "before"}))
    ids = [str(await redis.xadd(key, {"k": "s", "d": f"row {i} é"})) for i in range(5)]
    connection, tail = await open_tail(client)
    try:
        got = await tail.xread(key, first, count=3, block_ms=100)
        assert got == [(i, {"k": "s", "d": f"row {n} é"}) for n, i in enumerate(ids[:3])]
        got = await tail.xread(key, got[-1][0], count=1000, block_ms=100)
        assert [entry_id for entry_id, _ in got] == ids[3:]
        assert await tail.xread(key, ids[-1], count=1000, block_ms=50) == []  # nothing new

        async def add_soon() -> str:
            await asyncio.sleep(0.05)
            return str(await redis.xadd(key, {"d": "late"}))

        adding = asyncio.create_task(add_soon())
        got = await tail.xread(key, ids[-1], count=1000, block_ms=5000)  # waits for it
        assert got == [(await adding, {"d": "late"})]
    finally:
        await close_tail(connection, tail)
        await client.aclose()
        await redis.delete(key)


async def test_an_error_reply_closes_the_connection_and_raises(redis: Redis) -> None:
    key = f"test:not-a-stream:{uuid.uuid4()}"
    await redis.set(key, "x")
    connection, tail = await open_tail(redis)
    try:
        with pytest.raises(StreamLost, match="WRONGTYPE"):
            await tail.xread(key, "0-0", count=10, block_ms=50)
        with pytest.raises(StreamLost):  # and stays closed: the mirror opens another
            await tail.xread(key, "0-0", count=10, block_ms=50)
    finally:
        await close_tail(connection, tail)
        await redis.delete(key)


async def test_a_cancelled_read_closes_the_connection_so_no_reply_goes_astray(
    redis: Redis,
) -> None:
    key = f"test:stream:{uuid.uuid4()}"
    await redis.xadd(key, {"d": "x"})
    connection, tail = await open_tail(redis)
    try:
        reading = asyncio.create_task(tail.xread(key, "$", count=10, block_ms=5000))
        await asyncio.sleep(0.05)
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
        with pytest.raises(StreamLost, match="cancelled"):
            await tail.xread(key, "0-0", count=10, block_ms=50)
    finally:
        await close_tail(connection, tail)
        await redis.delete(key)


@pytest.fixture
async def mute_server() -> AsyncIterator[int]:
    """A port where a server answers +OK to what a connection says first (redis-py's
    handshake), then nothing to XREAD."""

    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while data := await reader.read(65536):
            if b"XREAD" not in data:
                writer.write(b"+OK\r\n" * data.count(b"*"))  # one reply a command

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    for writer in writers:
        writer.close()
        await writer.wait_closed()
    await server.wait_closed()


async def test_a_read_with_no_reply_past_its_block_raises(
    mute_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_tail, "SILENT_AFTER_S", 0.1)
    client = Redis(host="127.0.0.1", port=mute_server, protocol=2)
    connection, tail = await open_tail(client)
    try:
        async with asyncio.timeout(5):
            with pytest.raises(StreamLost, match="no reply"):
                await tail.xread("s", "0-0", count=10, block_ms=50)
    finally:
        await close_tail(connection, tail)
        await client.aclose()
