"""The index mirror's reads of the artisans' events stream, off the socket.

A mirror reads the stream every `gateway.mirror.APPLY_INTERVAL_S`, so each read finds
its code cold: redis-py's `XREAD` then cost ~500 µs of CPU a call (12-08, against ~100
back to back), most of a mirror's cost under load, in every worker. As for the node
channel (gateway/channel.py), redis-py only opens the connection (`open_raw`: TCP or
TLS, AUTH, the database, as the pool is configured); then `StreamTail` takes the
transport over, writes each `XREAD` itself and reads the reply with hiredis in
`data_received`.

One read at a time. A read with no reply `SILENT_AFTER_S` past its BLOCK time, a
cancelled read (its reply would come to nobody) and an error reply close the
connection; the read then raises `StreamLost`, which the mirror answers by rebuilding.
"""

from __future__ import annotations

import asyncio
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection

from gateway.channel import disconnect_quietly, open_raw
from gateway.redis_writer import pack

SILENT_AFTER_S = 5.0

#: A stream entry as redis-py gives it: (id, {field: value}).
Entry = tuple[str, dict[str, str]]


class StreamLost(ConnectionError):
    """The stream's connection closed, failed, or went silent."""


class StreamTail(asyncio.Protocol):
    """`XREAD` on one connection of its own (module docstring)."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader(encoding="utf-8", errors="replace")
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[Any] | None = None
        self._why = "the connection closed"
        # The stream protocol redis-py opened the connection with: told when it closes,
        # so that redis-py's own `disconnect` finds it closed.
        self._previous: asyncio.BaseProtocol | None = None

    def take_over(self, transport: asyncio.Transport) -> None:
        self._previous = transport.get_protocol()
        transport.set_protocol(self)
        self._transport = transport

    def close(self, why: str) -> None:
        self._why = why
        if self._transport is not None:
            self._transport.close()

    async def xread(self, key: str, last_id: str, *, count: int, block_ms: int) -> list[Entry]:
        """The entries of `key` after `last_id` (at most `count`), waiting up to
        `block_ms` for the first; [] if none came. Raises StreamLost."""
        transport = self._transport
        if transport is None or transport.is_closing():
            raise StreamLost(f"stream {key}: {self._why}")
        if self._waiter is not None:
            raise RuntimeError("StreamTail reads one reply at a time")
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        transport.write(pack(("XREAD", "COUNT", count, "BLOCK", block_ms, "STREAMS", key, last_id)))
        silent = loop.call_later(
            block_ms / 1000 + SILENT_AFTER_S,
            self.close,
            f"no reply to XREAD for {SILENT_AFTER_S} s",
        )
        try:
            reply = await waiter
        except asyncio.CancelledError:
            self.close("a read was cancelled")  # its reply would be taken for the next one's
            raise
        finally:
            silent.cancel()
            self._waiter = None
        if reply is None:  # BLOCK ran out
            return []
        # RESP2: [[key, entries]]; RESP3 (as the pool may speak it): {key: entries};
        # an entry is [id, [field, value, ...]]
        entries = reply[key] if isinstance(reply, dict) else reply[0][1]
        return [
            (entry_id, dict(zip(fields[::2], fields[1::2], strict=True)))
            for entry_id, fields in entries
        ]

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            waiter = self._waiter
            if waiter is None or waiter.done():
                self.close("a reply to no read")
                return
            if isinstance(reply, hiredis.ReplyError):
                self.close(f"XREAD failed: {reply}")
                waiter.set_exception(StreamLost(f"XREAD failed: {reply}"))
            else:
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(StreamLost(self._why if exc is None else f"{self._why}: {exc!r}"))
        if self._previous is not None:
            self._previous.connection_lost(exc)


async def open_tail(redis: Redis) -> tuple[AbstractConnection, StreamTail]:
    """A connection made as the pool makes them, read by a `StreamTail`. The caller
    closes it (`close_tail`)."""
    connection, transport = await open_raw(redis)
    tail = StreamTail()
    tail.take_over(transport)
    return connection, tail


async def close_tail(connection: AbstractConnection, tail: StreamTail) -> None:
    tail.close("closed")
    await disconnect_quietly(connection)
