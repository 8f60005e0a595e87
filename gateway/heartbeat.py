"""A heartbeat that never drops a healthy socket because this process was busy.

aiohttp pings an idle socket every `heartbeat` seconds and closes it (1006, "No PONG
received") when nothing came back within half that. Its verdict is a timer, armed when
the ping is *scheduled*; on Python 3.11 the ping itself goes out from a task, a loop
turn later, and a loop runs the timers that are due before it reads its sockets. So a
turn longer than the pong window (a stall, a storm of work) right after a ping leaves
the peer no time at all: the verdict runs before the ping's answer could come back, or
while it waits unread in the kernel (seen with uvloop: a 1.5 s stall after a 1 s ping
dropped a peer that answered at once). A mass reconnect follows, at the worst moment.

`PatientWebSocketResponse` gives the peer a fair window before it drops it: a verdict
that runs late (the loop was busy: `LATE_SHARE` of the window or more past its time)
waits one more whole window, and so does one that finds bytes from the peer waiting in
the kernel (`FIONREAD`) or read but not yet accounted (aiohttp's pending heartbeat
reset). A peer that sends nothing while the loop keeps time is dropped as before; while
the loop stays late, nothing is dropped for a missing pong.

It overrides one private method of aiohttp's `WebSocketResponse` and reads two of its
attributes (aiohttp is pinned in pyproject.toml; `tests/gateway/test_heartbeat.py`
fails if their behaviour changes).
"""

from __future__ import annotations

import array
import fcntl
import termios
from typing import Final, Protocol

from aiohttp import web

#: a verdict this share of the pong window past its time means the loop was busy
LATE_SHARE: Final = 0.25


class HasFileno(Protocol):
    def fileno(self) -> int: ...


def unread_bytes(sock: HasFileno | None) -> int:
    """Bytes the kernel holds for this socket that the process has not read (0 if the
    socket is gone or cannot say). `sock` is a transport's "socket" (asyncio's, or
    uvloop's pseudo-socket)."""
    if sock is None:
        return 0
    try:
        fd = sock.fileno()
        if fd < 0:
            return 0
        count = array.array("i", [0])
        fcntl.ioctl(fd, termios.FIONREAD, count, True)
    except (OSError, ValueError):
        return 0
    return int(count[0])


class PatientWebSocketResponse(web.WebSocketResponse):
    """aiohttp's server WebSocket whose missing-pong verdict first checks that nothing
    from the peer is waiting to be read (module docstring)."""

    def _pong_not_received(self) -> None:
        loop = self._loop
        window = self._pong_heartbeat
        if loop is not None and window and (self._late(loop.time(), window) or self._peer_spoke()):
            # Any bytes read later reset the heartbeat, which cancels this; if none
            # come, the verdict comes again after a window the peer really had.
            self._pong_response_cb = loop.call_later(window, self._pong_not_received)
            return
        super()._pong_not_received()

    def _late(self, now: float, window: float) -> bool:
        """Whether this verdict runs well past its time (the handle that fired it)."""
        handle = self._pong_response_cb
        return handle is not None and now - handle.when() >= LATE_SHARE * window

    def _peer_spoke(self) -> bool:
        if self._need_heartbeat_reset:  # read already, accounted in a coming turn
            return True
        req = self._req
        transport = req.transport if req is not None else None
        if transport is None:
            return False
        return unread_bytes(transport.get_extra_info("socket")) > 0
