"""This process's channel `node:{id}`, read off the socket: where remote pushes arrive.

A push to a user whose socket another process holds reaches that process here (the
sending half is gateway/notify.py). redis-py's `PubSub.get_message` cost the receiving
process ~330 µs of CPU for each wake-up bringing a message on a slow hour of this
project's machine (a health check, a retry wrapper, an asyncio timeout and a parser
await per call): the largest part of what a second worker added to an accept or a
status change. Here redis-py only opens the connection (TCP or TLS, AUTH, the protocol
handshake, as the pool is configured); then this protocol takes the transport over,
sends SUBSCRIBE and reads every reply with hiredis, redis-py's own parser, in
`data_received`: ~100 µs a wake-up there, most of it the wake-up itself. A PING every
`PING_EVERY_S` stands in for redis-py's health check: a connection with no reply for
twice that is dropped and opened again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import cast

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection

log = logging.getLogger("zendo.gateway")

PING_EVERY_S = 10.0
SUBSCRIBE_TIMEOUT_S = 5.0
_PING = b"*1\r\n$4\r\nPING\r\n"


class ChannelLost(ConnectionError):
    """The subscription's connection closed, failed, or went silent."""


class ChannelProtocol(asyncio.Protocol):
    """One subscription: `on_message(payload)` for each message on `channel`, called in
    `data_received` (it must not raise; what it raises is logged)."""

    def __init__(self, channel: str, on_message: Callable[[str], None]) -> None:
        loop = asyncio.get_running_loop()
        self.channel = channel
        self.subscribed: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.heard_at = time.monotonic()
        self._on_message = on_message
        self._reader = hiredis.Reader(encoding="utf-8", errors="replace")
        self._transport: asyncio.WriteTransport | None = None
        # The stream protocol redis-py opened the connection with: told when it closes,
        # so that redis-py's own `disconnect` finds it closed.
        self._previous: asyncio.BaseProtocol | None = None

    def take_over(self, transport: asyncio.WriteTransport) -> None:
        """Read and write `transport` from now on, and subscribe."""
        self._previous = transport.get_protocol()
        transport.set_protocol(self)
        self._transport = transport
        channel = self.channel.encode()
        transport.write(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(channel), channel))

    def ping(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(_PING)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        self.heard_at = time.monotonic()
        while (reply := self._reader.gets()) is not False:
            if isinstance(reply, list) and len(reply) == 3 and reply[0] == "message":
                try:
                    self._on_message(reply[2])
                except Exception:
                    log.exception("a message on %s could not be handled", self.channel)
            elif isinstance(reply, list) and reply and reply[0] == "subscribe":
                if not self.subscribed.done():
                    self.subscribed.set_result(None)
            elif isinstance(reply, hiredis.ReplyError):
                log.warning("pub/sub channel %s: %s", self.channel, reply)
                self.close()
            # anything else ("pong" in either protocol version) only proves it alive

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        if self._previous is not None:
            self._previous.connection_lost(exc)

    async def watch(self) -> None:
        """Returns never; raises ChannelLost once the connection closes or has said
        nothing for two PING periods."""
        while not self.lost.done():
            try:
                await asyncio.wait_for(asyncio.shield(self.lost), PING_EVERY_S)
            except TimeoutError:
                if time.monotonic() - self.heard_at > 2 * PING_EVERY_S:
                    self.close()
                    raise ChannelLost(f"channel {self.channel}: no reply to PING") from None
                self.ping()
        raise ChannelLost(f"channel {self.channel} closed")


async def open_raw(redis: Redis) -> tuple[AbstractConnection, asyncio.Transport]:
    """A connection made as the pool makes them (not taken from it: AUTH, TLS, the
    database, as configured), and its transport, for a protocol of the caller's to take
    over. The caller disconnects it (`disconnect_quietly`)."""
    pool = redis.connection_pool  # redis-py's pool methods are untyped
    connection: AbstractConnection = pool.make_connection()  # type: ignore[no-untyped-call]
    await connection.connect()  # type: ignore[no-untyped-call]
    writer = connection._writer  # redis-py keeps the asyncio stream of its connections private
    if writer is None:
        await disconnect_quietly(connection)
        raise ChannelLost("the connection closed at once")
    # uvloop's transports implement asyncio.Transport without subclassing it
    return connection, cast(asyncio.Transport, writer.transport)


async def disconnect_quietly(connection: AbstractConnection) -> None:
    try:
        await asyncio.shield(connection.disconnect(nowait=True))
    except Exception:  # closing a connection that already broke can fail too
        pass


async def open_channel(
    redis: Redis, channel: str, on_message: Callable[[str], None]
) -> tuple[AbstractConnection, ChannelProtocol]:
    """A connection made as the pool makes them (`open_raw`), subscribed to `channel`.
    The caller disconnects it (`close_channel`)."""
    connection, transport = await open_raw(redis)
    protocol = ChannelProtocol(channel, on_message)
    try:
        protocol.take_over(transport)
        await asyncio.wait(
            (protocol.subscribed, protocol.lost),
            timeout=SUBSCRIBE_TIMEOUT_S,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if not protocol.subscribed.done():
            raise ChannelLost(f"channel {channel}: no answer to SUBSCRIBE")
    except BaseException:
        await close_channel(connection, protocol)
        raise
    return connection, protocol


async def close_channel(connection: AbstractConnection, protocol: ChannelProtocol) -> None:
    protocol.close()
    await disconnect_quietly(connection)
