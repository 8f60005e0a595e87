"""The locustfile's socket users: one WebSocket each, opened by the README's reconnect
rule and read by a greenlet; custom latencies and WebSocket problems as locust events
(benchmarks/locustfile.py: the users' behaviour)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any

import gevent
import orjson
import websocket
from locust import User
from locust.env import Environment

from benchmarks import reconnect
from benchmarks.locust_http import LeanHttp
from benchmarks.locust_steps import Run

CONNECT_ATTEMPTS = 12  # about a minute of back-off at most (benchmarks/reconnect.py)


def record_latency(env: Environment, name: str, started: float, ended: float) -> None:
    if Run.stopping:
        return
    env.events.request.fire(
        request_type="LATENCY",
        name=name,
        response_time=(ended - started) * 1000.0,
        response_length=0,
        exception=None,
        context={},
    )


def record_ws_failure(env: Environment, name: str, exc: BaseException | str) -> None:
    env.events.request.fire(
        request_type="WS",
        name=name,
        response_time=0,
        response_length=0,
        # Short messages, so locust's error table groups them.
        exception=RuntimeError(
            f"{type(exc).__name__ if isinstance(exc, BaseException) else ''} {str(exc)[:120]}"
        ),
        context={},
    )


def _ws_refused(env: Environment) -> None:
    """A handshake refused for load (503 + Retry-After): retried, counted in its own row."""
    env.events.request.fire(
        request_type="WS",
        name="ws connect refused, retried",
        response_time=0,
        response_length=0,
        exception=None,
        context={},
    )


# A client's frame is masked (RFC 6455 §5.3); the key guards proxies against a hostile
# page's script, which a load generator is not: all zeros, so the payload goes as it is.
# The server unmasks it as any other frame.
_ZERO_MASK = bytes(4)


OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


def client_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """One final, masked frame: what websocket-client's ABNF builds in ~12 µs of
    Python a frame (its header packed field by field, the payload XORed), in ~1 µs."""
    n = len(payload)
    first = 0x80 | opcode
    if n < 126:
        head = bytes((first, 0x80 | n))
    elif n < 1 << 16:
        head = bytes((first, 0xFE)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, 0xFF)) + n.to_bytes(8, "big")
    return head + _ZERO_MASK + payload


def text_frame(payload: bytes) -> bytes:
    return client_frame(payload, OP_TEXT)


class FrameReader:
    """The server's frames off a socket (unmasked, RFC 6455 §5.2), as websocket-client's
    recv_data gives them but at a fraction of its Python: one recv for as many frames as
    arrived, each header read in place. As websocket-client does, a ping is answered with
    its pong (not returned) and a close with a close echoing its code (``send`` sends a
    frame); fragments are joined; the socket's end is a close."""

    __slots__ = ("buf", "send", "sock")

    def __init__(self, sock: Any, send: Callable[[bytes], None]) -> None:
        self.sock = sock
        self.send = send
        self.buf = b""

    def _need(self, n: int) -> None:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise websocket.WebSocketConnectionClosedException("socket closed by the peer")
            self.buf += chunk

    def next(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next data or close frame."""
        parts: list[bytes] = []
        message_opcode = 0
        while True:
            self._need(2)
            b0, b1 = self.buf[0], self.buf[1]
            length, at = b1 & 0x7F, 2
            if length == 126:
                self._need(4)
                length, at = int.from_bytes(self.buf[2:4], "big"), 4
            elif length == 127:
                self._need(10)
                length, at = int.from_bytes(self.buf[2:10], "big"), 10
            if b1 & 0x80:  # a server's frame is never masked; skip the key if one is
                at += 4
            self._need(at + length)
            payload, self.buf = self.buf[at : at + length], self.buf[at + length :]
            opcode = b0 & 0x0F
            if opcode == OP_PING:
                self.send(client_frame(payload, OP_PONG))
                continue
            if opcode == OP_PONG:
                continue
            if opcode == OP_CLOSE:
                try:  # the closing handshake's answer: the server need not wait for it
                    self.send(client_frame(payload[:2], OP_CLOSE))
                except OSError:
                    pass  # the peer is gone already
                return opcode, payload
            if opcode:  # the first (or only) frame of a message
                message_opcode = opcode
            parts.append(payload)
            if b0 & 0x80:  # FIN
                return message_opcode, parts[0] if len(parts) == 1 else b"".join(parts)


def _send_whole(ws: websocket.WebSocket, data: bytes) -> None:
    """``data`` on the socket in one send system call when it fits: gevent's sendall
    asks the kernel for the socket's buffer size first (a getsockopt per call, 2-3 % of
    this process's CPU at 2,500 fixes a second); the rest, if any, goes by sendall."""
    sock = ws.sock
    if sock is None:  # closed: what websocket-client's own send raises
        raise websocket.WebSocketConnectionClosedException("socket is already closed.")
    with ws.lock:  # websocket-client's own: a pong is sent from the reader
        sent = sock.send(data)
        if sent < len(data):
            sock.sendall(data[sent:])


def _ws_url(host: str) -> str:
    return host.replace("http://", "ws://").replace("https://", "wss://").rstrip("/") + "/ws"


class SocketUser(User):
    """Base: a user with a token, one WebSocket read by a greenlet and a lean HTTP
    client (benchmarks/locust_http.py)."""

    abstract = True
    profile: dict[str, Any]
    ws: websocket.WebSocket | None = None

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.http = LeanHttp(environment, self.host or "")

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.profile['access_token']}"}

    def open_socket(self) -> None:
        """Connect and wait for hello, retrying by the README's reconnect rule
        (benchmarks/reconnect.py) as an app does: a refusal for load is counted apart,
        any other failure (no listener yet, a reset, a bad answer) as a failure. Given
        up only after CONNECT_ATTEMPTS: a user left without a socket gets no offers (an
        artisan) or no status frames (a client: every job of its would end TIMEOUT)."""
        started = time.perf_counter()
        for attempt in range(CONNECT_ATTEMPTS):
            try:
                self.ws = websocket.create_connection(
                    _ws_url(self.host or ""),
                    header=[f"Authorization: Bearer {self.profile['access_token']}"],
                    suppress_origin=True,  # a native app sends no Origin
                    # websocket-client checks UTF-8 in pure Python, which cost locust 7 %
                    # of its CPU (the frames are JSON from orjson; a bad one fails to parse).
                    skip_utf8_validation=True,
                )
                # A frame's mask key came from os.urandom: one getrandom system call per
                # frame sent, 4 % of locust's CPU. The mask guards proxies against a
                # hostile page's script; a load generator needs no unpredictable key.
                self.ws.set_mask_key(random.randbytes)
                hello = json.loads(self.ws.recv())
                if hello.get("type") != "hello":
                    raise RuntimeError(f"expected hello, got {hello}")
            except websocket.WebSocketBadStatusException as exc:
                self.ws = None
                if exc.status_code != 503 or attempt + 1 == CONNECT_ATTEMPTS:
                    record_ws_failure(self.environment, "connect", exc)
                    return
                _ws_refused(self.environment)
                hint = reconnect.hint_from_headers(exc.resp_headers)
                gevent.sleep(reconnect.delay_s(attempt, hint))
                continue
            except Exception as exc:
                record_ws_failure(self.environment, "connect", exc)
                self.ws = None
                if attempt + 1 == CONNECT_ATTEMPTS:
                    return
                gevent.sleep(reconnect.delay_s(attempt))
                continue
            record_latency(self.environment, "ws connect", started, time.perf_counter())
            self.reader = gevent.spawn(self._read_loop)
            return

    def send(self, frame: dict[str, Any]) -> None:
        ws = self.ws
        if ws is None:
            return
        try:
            # orjson: the stdlib encoder was 4 % of this process's CPU (2,500 fixes/s)
            _send_whole(ws, text_frame(orjson.dumps(frame)))
        except Exception as exc:
            record_ws_failure(self.environment, f"send {frame['type']}", exc)

    def _read_loop(self) -> None:
        ws = self.ws
        assert ws is not None
        frames = FrameReader(ws.sock, lambda data: _send_whole(ws, data))
        while True:
            ended: Exception | str | None = None
            try:
                opcode, raw = frames.next()  # a close frame's data: its code and reason
            except Exception as exc:
                opcode, raw, ended = OP_CLOSE, b"", exc
            if opcode == OP_CLOSE or not raw:
                if self.ws is ws and not Run.stopping:
                    # Closed by the server or the network while the user holds it (not
                    # by on_stop, which lets go of it first): an app opens a new one by
                    # the README's rule, after a jittered wait and never before the
                    # close's `retry_after_ms` (sockets closed together come back spread).
                    code = int.from_bytes(raw[:2], "big") if len(raw) >= 2 else None
                    record_ws_failure(
                        self.environment, "closed, reopened", ended or f"close {code}"
                    )
                    self.ws = None
                    hint = reconnect.hint_from_close_reason(raw[2:])
                    gevent.sleep(reconnect.delay_s(0, hint))
                    self.open_socket()  # a new reader greenlet reads the new socket
                return
            frame = orjson.loads(raw)
            if frame.get("type") == "error":
                if not self.expected_error(frame):
                    record_ws_failure(
                        self.environment, f"error frame {frame.get('code')}", str(frame)
                    )
                continue
            self.on_frame(frame, time.perf_counter())

    def on_frame(self, frame: dict[str, Any], received: float) -> None:
        raise NotImplementedError

    def expected_error(self, frame: dict[str, Any]) -> bool:
        return False

    def on_stop(self) -> None:
        if self.ws is not None:
            ws, self.ws = self.ws, None
            ws.close()
        self.http.close()
