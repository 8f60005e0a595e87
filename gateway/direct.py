"""A socket's location fixes handled as they are parsed, without waking its read loop.

aiohttp parses a socket's frames in the protocol's `data_received` and queues each
message; the socket's handler, waiting in `receive()`, is woken a loop turn later and
returns to wait again. For an artisan's fix (nine frames in ten) that round costs more
than handling the fix: two coroutines and a future made and thrown away, a task step,
and the garbage collector scanning the next waiter of every socket, which lives until
its next frame, seconds later. With 10,000 sockets sending a fix a second, the receive
path and the collections it fed were a quarter of a worker's CPU (py-spy, 12-07);
handled here, a fix costs the server about a quarter less (BENCHMARKS.md, cost model).

So the queue can hand a TEXT message to a `direct` callback instead, which takes it
(returns True) or leaves it to be queued as before (False). The read loop sets the
callback only while it waits in `receive()`, and the queue uses it only when nothing is
queued before the message: the socket's messages are handled in the order they came,
and never while the read loop is busy with one of them. What the callback leaves (every
frame but a fix) takes aiohttp's path unchanged, close, ping and pong included.

`DirectWebSocketResponse` builds its queue in aiohttp's private `_post_start` (its
body, with this queue): aiohttp is pinned in pyproject.toml, and
`tests/gateway/test_direct.py` fails if the method changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp._websocket.reader import WebSocketDataQueue
from aiohttp.helpers import DEFAULT_CHUNK_SIZE  # web_ws's own queue limit
from aiohttp.http import WebSocketReader, WebSocketWriter

from gateway.heartbeat import PatientWebSocketResponse

# Takes a TEXT message's payload: True when it was handled, False to queue it.
Direct = Callable[[bytes], bool]


class DirectQueue(WebSocketDataQueue):
    """aiohttp's message queue, with a callback that may take a TEXT message."""

    direct: Direct | None = None

    def feed_data(self, data: Any, size: int) -> None:
        direct = self.direct
        if direct is not None and data[0] is WSMsgType.TEXT and not self._buffer:
            if direct(data[1]):
                return
        super().feed_data(data, size)


class DirectWebSocketResponse(PatientWebSocketResponse):
    """The gateway's socket: a patient heartbeat and a `DirectQueue`."""

    @property
    def direct_queue(self) -> DirectQueue:
        queue = self._reader
        assert isinstance(queue, DirectQueue), "prepare() first"
        return queue

    def _post_start(
        self, request: web.BaseRequest, protocol: str | None, writer: WebSocketWriter
    ) -> None:
        self._ws_protocol = protocol
        self._writer = writer

        self._reset_heartbeat()

        loop = self._loop
        assert loop is not None
        self._reader = DirectQueue(request._protocol, DEFAULT_CHUNK_SIZE, loop=loop)
        self._parser = WebSocketReader(
            self._reader,
            self._max_msg_size,
            compress=bool(self._compress),
            decode_text=self._decode_text,
        )
        cb = None if self._heartbeat is None else self._on_data_received
        request.protocol.set_parser(self._parser, data_received_cb=cb)
        request.protocol.keep_alive(False)
