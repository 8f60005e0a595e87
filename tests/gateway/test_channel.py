"""gateway/channel.py: a node's channel read off the socket, against the real Redis."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
import uvloop
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway import channel as channel_mod
from gateway.channel import ChannelLost, close_channel, open_channel
from tests.conftest import TEST_REDIS_URL


class Inbox:
    """The channel's handler: keeps what arrives; `until(n)` waits for the n-th."""

    def __init__(self) -> None:
        self.got: list[str] = []
        self._arrived: asyncio.Queue[None] = asyncio.Queue()
        self._waited = 0

    def __call__(self, payload: str) -> None:
        self.got.append(payload)
        self._arrived.put_nowait(None)

    async def until(self, count: int) -> None:
        async with asyncio.timeout(5):
            for _ in range(count - self._waited):
                await self._arrived.get()
        self._waited = max(self._waited, count)


@pytest.mark.parametrize("protocol", [2, 3])
async def test_messages_arrive_whole_and_in_order(redis: Redis, protocol: int) -> None:
    """Both protocol versions (redis-py speaks RESP3 by default), any payload size, a
    burst read in one go, non-ASCII text."""
    client = Redis.from_url(TEST_REDIS_URL, decode_responses=True, protocol=protocol)
    name = f"node:test-{uuid.uuid4()}"
    inbox = Inbox()
    connection, protocol_ = await open_channel(client, name, inbox)
    try:
        payloads = ["u1\n{}", "u2\n" + "é" * 70_000, *(f"u{i}\n{{}}" for i in range(50))]
        pipe = redis.pipeline(transaction=False)
        for payload in payloads:
            pipe.publish(name, payload)
        assert await pipe.execute() == [1] * len(payloads)  # one subscriber: this one
        await inbox.until(len(payloads))
        assert inbox.got == payloads
        await redis.publish(f"node:other-{uuid.uuid4()}", "x\n{}")  # another channel: not here
        protocol_.ping()  # a PING's answer is no message
        await redis.publish(name, "last\n{}")
        await inbox.until(len(payloads) + 1)
        assert inbox.got[-1] == "last\n{}"
    finally:
        await close_channel(connection, protocol_)
        await client.aclose()
    assert protocol_.lost.done()
    assert await redis.publish(name, "gone\n{}") == 0  # unsubscribed with the connection


async def test_a_failing_handler_is_logged_and_the_next_message_still_arrives(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"node:test-{uuid.uuid4()}"
    inbox = Inbox()

    def handle(payload: str) -> None:
        if payload == "bad":
            raise ValueError("boom")
        inbox(payload)

    connection, protocol = await open_channel(redis, name, handle)
    try:
        with caplog.at_level(logging.ERROR, logger="zendo.gateway"):
            await redis.publish(name, "bad")
            await redis.publish(name, "good")
            await inbox.until(1)
        assert inbox.got == ["good"]
        assert "could not be handled" in caplog.text
    finally:
        await close_channel(connection, protocol)


async def test_a_killed_connection_ends_the_watch(redis: Redis) -> None:
    name = f"node:test-{uuid.uuid4()}"
    connection, protocol = await open_channel(redis, name, lambda _payload: None)
    try:
        clients = await redis.client_list()
        ours = [c for c in clients if "subscribe" in c.get("cmd", "") and c.get("sub") == "1"]
        assert ours
        for client in ours:
            await redis.client_kill_filter(_id=client["id"])
        async with asyncio.timeout(5):
            with pytest.raises(ChannelLost):
                await protocol.watch()
    finally:
        await close_channel(connection, protocol)


async def test_a_silent_connection_is_dropped(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No answer to the PINGs for two periods (here: the PINGs are not sent)."""
    monkeypatch.setattr(channel_mod, "PING_EVERY_S", 0.05)
    name = f"node:test-{uuid.uuid4()}"
    connection, protocol = await open_channel(redis, name, lambda _payload: None)
    monkeypatch.setattr(protocol, "ping", lambda: None)
    try:
        async with asyncio.timeout(5):
            with pytest.raises(ChannelLost, match="no reply"):
                await protocol.watch()
        await asyncio.wait_for(protocol.lost, 2)  # the connection was closed
    finally:
        await close_channel(connection, protocol)


async def test_pings_keep_an_idle_connection(redis: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(channel_mod, "PING_EVERY_S", 0.05)
    name = f"node:test-{uuid.uuid4()}"
    connection, protocol = await open_channel(redis, name, lambda _payload: None)
    try:
        watch = asyncio.create_task(protocol.watch())
        await asyncio.sleep(0.4)  # eight periods with nothing but the PINGs' answers
        assert not watch.done()
        protocol.close()
        with pytest.raises(ChannelLost):
            await watch
    finally:
        await close_channel(connection, protocol)


async def test_no_server_is_a_connection_error_and_leaks_nothing() -> None:
    client = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    with pytest.raises(RedisConnectionError):
        await open_channel(client, "node:nobody", lambda _payload: None)
    await client.aclose()


async def test_the_server_loop_uvloop_hands_its_transport_over_too(redis: Redis) -> None:
    """The server runs on uvloop, whose transports are not asyncio's classes."""
    name = f"node:test-{uuid.uuid4()}"

    async def scenario() -> list[str]:
        client = Redis.from_url(TEST_REDIS_URL, decode_responses=True)
        inbox = Inbox()
        connection, protocol = await open_channel(client, name, inbox)
        try:
            await client.publish(name, "over uvloop")
            await inbox.until(1)
        finally:
            await close_channel(connection, protocol)
            await client.aclose()
        return inbox.got

    assert await asyncio.to_thread(uvloop.run, scenario()) == ["over uvloop"]


async def test_an_error_reply_drops_the_subscription(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """RESP2 refuses other commands on a subscribed connection: the error is logged and
    the connection dropped (the listener opens another), never taken for a message."""
    client = Redis.from_url(TEST_REDIS_URL, decode_responses=True, protocol=2)
    name = f"node:test-{uuid.uuid4()}"
    inbox = Inbox()
    connection, protocol = await open_channel(client, name, inbox)
    try:
        with caplog.at_level(logging.WARNING, logger="zendo.gateway"):
            assert protocol._transport is not None
            protocol._transport.write(b"*2\r\n$3\r\nGET\r\n$1\r\nx\r\n")
            async with asyncio.timeout(5):
                with pytest.raises(ChannelLost):
                    await protocol.watch()
        assert f"pub/sub channel {name}" in caplog.text
        assert inbox.got == []
    finally:
        await close_channel(connection, protocol)
        await client.aclose()
