"""A reconnect storm's refused handshakes, answered at the door.

While the gateway refuses new sockets (`Opening.full`, gateway/arrivals.py), a refusal
through aiohttp costs about what a request does (~340 µs on a slow machine: the protocol
and its transport, the parser, the request, the middlewares, the problem's rendering,
the connection's teardown), and in a storm on a starved machine most handshakes are
refused, some several times: the refusals took as much of the process's CPU as serving
the sockets it let in.

`HandshakeScreen` is the listener's screen (zendo/system/listener.py): it sees each
accepted connection before aiohttp does, and peeks at its first bytes (a connection
whose request has not arrived yet is looked at again once it is readable). A complete
request head `GET /ws ...` with nothing after it is a handshake, judged here, when it is
accepted:
- while the gateway refuses, it gets the answer the WebSocket route would give (503
  problem+json `overloaded`, the Retry-After appointment of `Opening.refused`, the
  security headers), written straight to the socket, which is then closed. The head is
  read off the socket first, so that the close is a clean end of stream (closing over
  unread bytes would reset the connection before the client read its answer). Server
  CPU per refusal: 130-150 µs here, 300-420 µs through aiohttp (bare loop ~70,000).
- otherwise it is admitted: it goes on to aiohttp, and the WebSocket route lets it in
  (`Opening.expect` / `arrive`, by the peer's address). The listener accepts hundreds
  of connections in one wake; each is judged with the ones admitted before it counted.
Anything else (another route, a head sent in pieces, bytes after the head, a socket
that fails) goes to aiohttp, which answers as usual. A refusal here counts in
`zendo_ws_refused` and `zendo_http_requests_total{route="/ws",status="503"}` as one on
the route does; it writes no access-log line (in a storm, thousands a second).
"""

from __future__ import annotations

import functools
import socket

import orjson
from aiohttp import web
from prometheus_client import Counter

from core.errors import Overloaded
from gateway import appkeys as gateway_keys
from gateway.arrivals import Opening
from gateway.ws import REFUSED_DETAIL
from zendo.admission import WEBSOCKET_PATH
from zendo.middleware import SECURITY_HEADERS, problem_document

# Bytes peeked at: a handshake's head is a few hundred (aiohttp's own limit per line is 8 KiB).
PEEK_BYTES = 4096
_HEAD_END = b"\r\n\r\n"
_REQUEST_LINES = tuple(f"GET {WEBSOCKET_PATH}{sep}".encode() for sep in (" ", "?"))
_STATUS = 503


@functools.cache  # one per Retry-After: whole seconds up to arrivals.MAX_RETRY_AFTER_S
def refusal(retry_after_s: int) -> bytes:
    """The whole HTTP answer to a refused handshake."""
    body = orjson.dumps(
        problem_document(_STATUS, Overloaded.code, Overloaded.title, REFUSED_DETAIL)
    )
    headers = [
        ("Content-Type", "application/problem+json"),
        ("Content-Length", str(len(body))),
        ("Retry-After", str(retry_after_s)),
        ("Connection", "close"),
        *SECURITY_HEADERS,
    ]
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return f"HTTP/1.1 {_STATUS} Service Unavailable\r\n{head}\r\n".encode() + body


class HandshakeScreen:
    """Answers a refused WebSocket handshake itself (see the module's docstring)."""

    __slots__ = ("_opening", "_refused", "_requests")

    def __init__(self, opening: Opening, refused: Counter, requests: Counter) -> None:
        self._opening = opening
        self._refused = refused
        self._requests = requests.labels(route=WEBSOCKET_PATH, status=str(_STATUS))

    @classmethod
    def of(cls, app: web.Application) -> HandshakeScreen:
        gateway = app[gateway_keys.GATEWAY]
        return cls(gateway.opening, gateway.metrics.ws_refused, gateway.metrics.http_requests)

    def __call__(self, conn: socket.socket) -> bool | None:
        """True when `conn` was answered and closed here, False when it goes to aiohttp,
        None while nothing has arrived (the listener asks again once it is readable)."""
        try:
            head = conn.recv(PEEK_BYTES, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return None
        except OSError:  # the peer reset: aiohttp's to handle
            return False
        # Not a handshake, or not yet all of one (a head sent in pieces, rare: waiting for
        # the rest is not possible here, its first bytes keep the socket readable), or
        # bytes after the head: aiohttp's.
        if not head.startswith(_REQUEST_LINES) or not head.endswith(_HEAD_END):
            return False
        end = head.find(_HEAD_END) + len(_HEAD_END)
        if end != len(head):
            return False
        if not self._opening.full():
            try:
                self._opening.expect(conn.getpeername())
            except OSError:  # the peer is gone already
                pass
            return False
        try:
            conn.recv(end, socket.MSG_DONTWAIT)
            conn.send(refusal(self._opening.refused()), socket.MSG_DONTWAIT)
        except OSError:
            pass  # the peer is gone: nothing more to say
        conn.close()
        self._refused.inc()
        self._requests.inc()
        return True
