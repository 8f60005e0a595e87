"""The locustfile's socket users: one WebSocket each, opened by the README's reconnect
rule and read by a greenlet; custom latencies and WebSocket problems as locust events
(benchmarks/locustfile.py: the users' behaviour)."""

from __future__ import annotations

import json
import random
import time
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


def text_frame(payload: bytes) -> bytes:
    """One final, masked text frame: what websocket-client's ABNF builds in ~12 µs of
    Python a frame (its header packed field by field, the payload XORed), in ~1 µs."""
    n = len(payload)
    if n < 126:
        head = bytes((0x81, 0x80 | n))
    elif n < 1 << 16:
        head = b"\x81\xfe" + n.to_bytes(2, "big")
    else:
        head = b"\x81\xff" + n.to_bytes(8, "big")
    return head + _ZERO_MASK + payload


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
            data = text_frame(orjson.dumps(frame))
            if ws.sock is None:  # closed: what websocket-client's own send raises
                raise websocket.WebSocketConnectionClosedException("socket is already closed.")
            with ws.lock:  # websocket-client's own: a pong is sent from the reader
                # One send system call: gevent's sendall asks the kernel for the socket's
                # buffer size first (a getsockopt per call, 2-3 % of this process's CPU
                # at 2,500 fixes a second); the rest, if any, goes by sendall.
                sent = ws.sock.send(data)
                if sent < len(data):
                    ws.sock.sendall(data[sent:])
        except Exception as exc:
            record_ws_failure(self.environment, f"send {frame['type']}", exc)

    def _read_loop(self) -> None:
        ws = self.ws
        assert ws is not None
        while True:
            ended: Exception | str | None = None
            try:
                opcode, raw = ws.recv_data()  # a close frame's data: its code and reason
            except Exception as exc:
                opcode, raw, ended = websocket.ABNF.OPCODE_CLOSE, b"", exc
            if opcode == websocket.ABNF.OPCODE_CLOSE or not raw:
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
