"""One authenticated socket: its identity, its bounded send queue and writer task.

Only the handler task reads from the socket. Writes go through `send`, which never
awaits. When nothing is queued and the transport's buffer is below the writer limit,
the frame goes onto the transport at once (a writer task would cost it a loop turn).
Otherwise frames are queued (at most `send_queue_max`) and a writer task, created on
demand and gone when the queue is empty, writes them in order as the peer reads. A
client that lets the queue fill up is a slow consumer: it is closed with 1013 ("try
again later": it may reconnect) so that it never stalls the producers or other sockets.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from gateway.location import FixValidator

log = logging.getLogger("zendo.gateway")

CLOSE_POLICY = 1008  # junk frames
CLOSE_TOO_BIG = 1009
CLOSE_SLOW_CONSUMER = 1013
CLOSE_TRY_AGAIN = 1013  # a backing service is down
CLOSE_UNAUTHORIZED = 4401
_CLOSE_TIMEOUT_S = 1.0


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def encode(frame: dict[str, Any]) -> bytes:
    """Server -> client frames: orjson (UUID and datetime natively, Decimal as number)."""
    return orjson.dumps(frame, default=_default, option=orjson.OPT_UTC_Z)


def text_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented RFC 6455 text frame (server -> client, no extension)."""
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload


class Session:
    __slots__ = (
        "_closing",
        "_queue",
        "_writer",
        "actions",
        "expires_at",
        "expiry_handle",
        "junk",
        "max_queue",
        "not_verified_sent",
        "pending_actions",
        "role",
        "session_id",
        "specialty",
        "transport",
        "user_id",
        "validator",
        "verified",
        "write_limit",
        "ws",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        request: web.Request,
        *,
        user_id: str,
        role: str,
        expires_at: int,
        max_queue: int,
        write_limit: int,
        session_id: str | None = None,
    ) -> None:
        self.ws = ws
        # The login session (refresh family) of the socket's latest token; logging it
        # out closes the socket with 4401.
        self.session_id = session_id
        self.transport = request.transport
        self.user_id = user_id
        self.role = role
        self.expires_at = expires_at
        self.max_queue = max_queue
        self.write_limit = write_limit
        self._queue: deque[bytes] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self.expiry_handle: asyncio.TimerHandle | None = None
        self.actions: asyncio.Task[None] | None = None
        self.pending_actions = 0
        self.junk: deque[float] = deque()
        self.validator: FixValidator | None = None
        self.verified = False
        self.specialty = ""
        self.not_verified_sent = False

    @property
    def is_artisan(self) -> bool:
        return self.role == "ARTISAN"

    @property
    def closing(self) -> bool:
        return self._closing or self.ws.closed

    def send(self, frame: dict[str, Any]) -> bool:
        return self.send_raw(encode(frame))

    def send_raw(self, data: bytes) -> bool:
        """Queue an encoded text frame; False (and the socket is closed) if it is full."""
        if self.closing:
            return False
        transport = self.transport
        if (
            self._writer is None
            and transport is not None
            and not transport.is_closing()
            and transport.get_write_buffer_size() < self.write_limit
        ):
            # Nothing queued and the socket keeps up: straight onto the transport, now.
            # A writer task would cost the frame a loop turn; it is only needed to wait
            # for a slow reader (and then the queue bounds what that reader can cost).
            transport.write(text_frame(data))
            return True
        if len(self._queue) >= self.max_queue:
            log.warning("slow consumer %s: send queue full, disconnecting", self.user_id)
            self.close_soon(CLOSE_SLOW_CONSUMER, "slow consumer")
            return False
        self._queue.append(data)
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._drain())
        return True

    def send_error(self, code: str, detail: str) -> None:
        self.send({"type": "error", "code": code, "detail": detail})

    async def _drain(self) -> None:
        try:
            while self._queue and not self.ws.closed:
                await self.ws.send_frame(self._queue.popleft(), WSMsgType.TEXT)
        except (ConnectionError, RuntimeError):
            self._queue.clear()  # the peer is gone; the read loop sees it too
        finally:
            self._writer = None

    def close_soon(self, code: int, message: str) -> None:
        """Close from any task without awaiting (the read loop then ends)."""
        if self._closing:
            return
        self._closing = True
        task = asyncio.get_running_loop().create_task(self._close(code, message))
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _close(self, code: int, message: str) -> None:
        writer = self._writer
        if writer is not None and code == CLOSE_SLOW_CONSUMER:
            # The writer is stuck waiting for the peer to read: abandon its frames.
            writer.cancel()
            self._queue.clear()
        elif writer is not None:
            # Flush what is queued (e.g. an error frame) before the close frame.
            await asyncio.wait([writer], timeout=_CLOSE_TIMEOUT_S)
        # asyncio.wait, not wait_for: a close stuck on a full socket buffer is abandoned,
        # not cancelled and awaited; the transport is then aborted (the peer sees 1006).
        closing = asyncio.get_running_loop().create_task(
            self.ws.close(code=code, message=message.encode())
        )
        closing.add_done_callback(_ignore_result)
        done, _pending = await asyncio.wait([closing], timeout=_CLOSE_TIMEOUT_S)
        # A slow peer leaves unread data in the socket buffer: a graceful close would
        # wait for it forever, so the connection is aborted (the peer sees a reset).
        stuck = not done or closing.cancelled() or code == CLOSE_SLOW_CONSUMER
        if stuck and self.transport is not None:
            self.transport.abort()

    async def close_now(self, code: int, message: str) -> None:
        """Shutdown: drop queued frames and send the close frame (the caller bounds the
        wait and aborts what is left)."""
        self._closing = True
        if self._writer is not None:
            self._writer.cancel()
        self._queue.clear()
        await self.ws.close(code=code, message=message.encode())

    def abort(self) -> None:
        """Drop the connection without a closing handshake (the peer sees 1006)."""
        if self.transport is not None:
            self.transport.abort()

    def stop(self) -> None:
        """Release timers and tasks once the read loop has ended."""
        if self.expiry_handle is not None:
            self.expiry_handle.cancel()
        if self._writer is not None:
            self._writer.cancel()
        self._queue.clear()


def _ignore_result(task: asyncio.Task[bool]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so a reset peer is not logged as "never retrieved"


# Close tasks are fire-and-forget; keep references so they are not garbage collected.
_background: set[asyncio.Task[None]] = set()
