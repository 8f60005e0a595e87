"""Post-commit Redis writes that do not wait for their replies.

Once a change is committed, the outbox's Redis work (the live-state scripts, the pushes
to other processes' sockets) only has to happen: its replies matter only when they are
errors. Awaited, each costs the request a round trip, and on this project's VMs a round
trip after which the process falls idle costs it a wake-up more: one `EVALSHA` every
5 ms on uvloop (12-06, bare loop ~110,000) cost 250 µs of client CPU awaited through
the pool, 60 written alone (BENCHMARKS.md has what it does to each route).

`RedisWriter` writes on a connection of its own whose reading is paused: Redis's replies
wait in the socket's buffer and are read in batches, `READ_EVERY_S` after the first
one is due, by a timer that exists only while replies are due. A script is loaded
before its first call on each connection. Redis answers a connection's commands in
order, so each reply is matched with the command that asked for it: an error goes to
that command's `on_error`; NOSCRIPT (the scripts were flushed since) loads the script
and sends the command once more (a command that got NOSCRIPT did not run). A connection
that leaves a reply due for `SILENT_AFTER_S` is dropped.

While the connection is not open (starting, lost, reconnecting with back-off) or its
output is backed up past `MAX_BUFFERED`, `send` returns False and the caller awaits a
round trip through the pool instead. Commands in flight when the connection is lost
may or may not have run: each goes to its `on_error` (the live state converges from
PostgreSQL's truth on the next refresh, as after any failed apply).

Redis runs one connection's commands in order, not two connections' input in the order
it arrived: what reaches it within one pass of its event loop runs in the order its poll
lists the connections. So a command that the process sends on another connection right
after `send` (a pool read, say) may run before the commands sent here (seen in the
tests: 2 runs in 30 read a change's key before its script had run). Nothing in the
server reads its own live-state writes back expecting them (the live state is a cache
of PostgreSQL's truth that converges, and a change's pushes go out before its Redis
writes); what must see them waits for `drained`: every reply due read, so every
command sent has run.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection

from core.redispool import HiredisPacking
from gateway.channel import disconnect_quietly, open_raw
from gateway.tasks import stop_tasks

log = logging.getLogger("zendo.gateway")

READ_EVERY_S = 0.1
SILENT_AFTER_S = 5.0
# Bytes queued in the transport past which `send` declines (Redis not keeping up).
MAX_BUFFERED = 4 * 1024 * 1024
# Replies due past which they are read at once rather than on the timer.
MAX_DUE = 10_000
CLOSE_WAIT_S = 1.0
START_WAIT_S = 2.0
_NOSCRIPT = "NOSCRIPT"

ErrorHandler = Callable[[Exception], None]


@dataclass(slots=True)
class _Due:
    """A command sent whose reply has not been read yet."""

    command: tuple[Any, ...]
    source: str | None  # the script an EVALSHA calls, to load it on NOSCRIPT
    on_error: ErrorHandler | None
    sent_at: float


class WriterProtocol(asyncio.Protocol):
    """The connection's reading half: replies matched with the commands due, in order."""

    def __init__(self, writer: RedisWriter) -> None:
        self._writer = writer
        self._reader = hiredis.Reader(encoding="utf-8", errors="replace")
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._previous: asyncio.BaseProtocol | None = None

    def take_over(self, transport: asyncio.Transport) -> None:
        self._previous = transport.get_protocol()
        transport.set_protocol(self)
        transport.pause_reading()

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            self._writer.on_reply(reply)
        self._writer.on_read()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        self._writer.on_lost(exc)
        if self._previous is not None:  # redis-py's own disconnect then finds it closed
            self._previous.connection_lost(exc)


class RedisWriter:
    """Writes commands on one connection without waiting for their replies (module
    docstring). `run` keeps the connection open until cancelled; `close` waits briefly
    for the replies due, then closes it."""

    def __init__(self, redis: Callable[[], Redis], *, read_every_s: float = READ_EVERY_S) -> None:
        self._redis = redis
        self._read_every_s = read_every_s
        self._transport: asyncio.Transport | None = None
        self._due: deque[_Due] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._reading = False
        self._task: asyncio.Task[None] | None = None
        # Scripts loaded on this connection: each is loaded before its first call on a
        # new connection (Redis may have restarted without them).
        self._loaded: set[str] = set()
        self._opened: asyncio.Event | None = None
        # set when no reply is due any more (`drained`)
        self._drained: asyncio.Future[None] | None = None
        self.sent = 0
        self.failed = 0

    @property
    def due(self) -> int:
        """Commands sent whose replies have not been read yet."""
        return len(self._due)

    @property
    def ready(self) -> bool:
        transport = self._transport
        return (
            transport is not None
            and not transport.is_closing()
            and transport.get_write_buffer_size() < MAX_BUFFERED
        )

    def send(
        self,
        commands: Sequence[tuple[Any, ...]],
        sources: Sequence[str | None],
        on_error: Sequence[ErrorHandler | None],
    ) -> bool:
        """Write `commands` now; False (nothing written) when the connection is not
        ready. `sources[i]` is the script `commands[i]` calls with EVALSHA (None if
        none); `on_error[i]` gets that command's error, if it fails."""
        if not commands:
            return True
        if not self.ready:
            return False
        assert self._transport is not None
        loop = asyncio.get_running_loop()
        now = loop.time()
        packed: list[bytes] = []
        for command, source, handler in zip(commands, sources, on_error, strict=True):
            if source is not None and source not in self._loaded:
                self._loaded.add(source)
                packed.append(pack(("SCRIPT", "LOAD", source)))
                self._due.append(_Due(("SCRIPT", "LOAD"), None, None, now))
            packed.append(pack(command))
            self._due.append(_Due(command, source, handler, now))
        self._transport.write(b"".join(packed))
        self.sent += len(commands)
        if len(self._due) > MAX_DUE:
            self._read_now()
        elif self._timer is None and not self._reading:
            self._timer = loop.call_later(self._read_every_s, self._read_now)
        return True

    def read_now(self) -> None:
        """Read the replies due in the next loop turn, rather than on the timer."""
        if self._timer is not None:
            self._timer.cancel()
        self._read_now()

    def _read_now(self) -> None:
        self._timer = None
        transport = self._transport
        if transport is None or transport.is_closing() or not self._due:
            return
        oldest = self._due[0].sent_at
        if asyncio.get_running_loop().time() - oldest > SILENT_AFTER_S:
            log.warning("redis writer: no reply for %.1f s; reconnecting", SILENT_AFTER_S)
            transport.close()
            return
        self._reading = True
        transport.resume_reading()

    def on_reply(self, reply: Any) -> None:
        if not self._due:
            log.warning("redis writer: a reply to no command: %r", reply)
            return
        due = self._due.popleft()
        if not isinstance(reply, hiredis.ReplyError):
            if not self._due:
                self._wake_drained()
            return
        if str(reply).startswith(_NOSCRIPT) and due.source is not None and self.ready:
            # Not run: load the script, then send the command again (in that order).
            assert self._transport is not None
            self._transport.write(pack(("SCRIPT", "LOAD", due.source)) + pack(due.command))
            now = asyncio.get_running_loop().time()
            self._due.append(_Due(("SCRIPT", "LOAD"), None, None, now))
            self._due.append(_Due(due.command, None, due.on_error, now))
            return
        self._fail(due, reply)
        if not self._due:
            self._wake_drained()

    def on_read(self) -> None:
        """What was readable is read: pause until the next batch is due."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._drained is not None and self._due:
            return  # `drained` waits for the rest: read on
        transport.pause_reading()
        self._reading = False
        if self._due and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._read_every_s, self._read_now)

    def on_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._reading = False
        self._loaded.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        lost = ConnectionError(f"redis writer connection lost: {exc!r}")
        while self._due:
            self._fail(self._due.popleft(), lost)
        self._wake_drained()

    def _wake_drained(self) -> None:
        waiter, self._drained = self._drained, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def drained(self, timeout_s: float = CLOSE_WAIT_S) -> bool:
        """Read the replies due now, and return once none is left: every command sent
        has run (or failed, its `on_error` told), and what the process sends to Redis
        next runs after them. False if some were still due after `timeout_s` (Redis
        not answering, or commands sent all along meanwhile)."""
        if not self._due:
            return True
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()
        waiter = self._drained
        self.read_now()
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(waiter)
        except TimeoutError:
            return False
        return True

    def _fail(self, due: _Due, exc: Exception) -> None:
        self.failed += 1
        if due.on_error is None:
            log.warning("redis writer: %s failed: %s", due.command[0], exc)
            return
        try:
            due.on_error(exc)
        except Exception:
            log.exception("redis writer: an error handler failed")

    async def run(self) -> None:
        """Open the connection, and open it again with back-off whenever it is lost."""
        backoff = 0.05
        while True:
            connection: AbstractConnection | None = None
            try:
                connection, protocol = await self._open()
                backoff = 0.05
                await protocol.lost
                log.warning("redis writer: connection lost; reconnecting in %.2fs", backoff)
            except Exception as exc:
                log.warning("redis writer: %r; reconnecting in %.2fs", exc, backoff)
            finally:
                self._transport = None
                if connection is not None:
                    await disconnect_quietly(connection)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def _open(self) -> tuple[AbstractConnection, WriterProtocol]:
        connection, transport = await open_raw(self._redis())
        protocol = WriterProtocol(self)
        protocol.take_over(transport)
        self._loaded.clear()
        self._transport = transport
        if self._opened is not None:
            self._opened.set()
        return connection, protocol

    async def start(self, timeout_s: float = START_WAIT_S) -> None:
        """Start `run`, and wait up to `timeout_s` for the connection (without it the
        callers' round trips go through the pool)."""
        self._opened = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self.run(), name="redis-writer")
        try:
            async with asyncio.timeout(timeout_s):
                await self._opened.wait()
        except TimeoutError:
            log.warning("redis writer: not connected after %.1f s; going on", timeout_s)

    async def close(self) -> None:
        """Read the replies still due (for at most CLOSE_WAIT_S), then close."""
        if self._transport is not None:
            await self.drained(CLOSE_WAIT_S)
        if self._task is not None:
            await stop_tasks(self._task)
            self._task = None


_PACKING = HiredisPacking()


def pack(command: tuple[Any, ...]) -> bytes:
    """One command in Redis's wire format (as redis-py would send it)."""
    return b"".join(_PACKING.pack_command(*command))
