"""A lean HTTP/1.1 client for the locustfile's JSON requests.

locust's FastHttpSession (geventhttpclient) costs its process ~0.3 ms of CPU a request
on a medium machine (this client: 0.11-0.13 ms, the same requests to the same server):
a URL parsed, a cookie jar consulted and updated, headers built as objects, the answer
fed to a callback parser, a response wrapper and its context manager. Those requests
were 40 % of locust's samples at the README's rate (py-spy): CPU taken from the two
cores the server shares, and time during which locust's greenlets, and so every
latency it reports, wait. The requests the server sees are the same (method, path,
`Host`, `User-Agent`, `Accept-Encoding`, `Authorization`, `Content-Type`,
`Content-Length`, a JSON body, kept alive);
only their making is cheaper: one `bytes` built, one `send`, the answer's head split
once. Each request is reported to locust as FastHttpSession reports it (same row
names, response time from the send to the last byte of the answer, failures with
status 0 when no answer came).
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import gevent.monkey
import orjson
from gevent import socket
from locust.env import Environment

#: as FastHttpSession's default network timeout: a request unanswered this long fails
TIMEOUT_S = 60.0
_READ = 65536
USER_AGENT = "zendo-locust"
_real_poll = gevent.monkey.get_original("select", "poll")


class HttpError(Exception):
    """No usable answer: the connection failed or the answer could not be parsed."""


@dataclass(slots=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class _Conn:
    """One kept-alive connection and the bytes read past the last answer."""

    __slots__ = ("buf", "sock")

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def exchange(self, request: bytes) -> tuple[Answer, bool]:
        """Send one request, read its answer; (answer, whether the connection stays)."""
        sock = self.sock
        sent = sock.send(request)
        if sent < len(request):
            sock.sendall(request[sent:])
        buf = self.buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            buf += self._more(first=not buf)
        lines = buf[:end].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise HttpError(f"bad status line {lines[0][:80]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        rest = buf[end + 4 :]
        if status in (204, 304) or 100 <= status < 200:
            length = 0
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body, rest = self._chunked(rest)
            self.buf = rest
            return Answer(status, headers, body), _keeps(parts[0], headers)
        elif "content-length" in headers:
            length = int(headers["content-length"])
        else:  # the answer ends with the connection
            while chunk := sock.recv(_READ):
                rest += chunk
            return Answer(status, headers, rest), False
        while len(rest) < length:
            rest += self._more()
        self.buf = rest[length:]
        return Answer(status, headers, rest[:length]), _keeps(parts[0], headers)

    def _more(self, first: bool = False) -> bytes:
        chunk: bytes = self.sock.recv(_READ)
        if not chunk:
            raise HttpError(
                "connection closed before any answer" if first else "connection closed mid-answer"
            )
        return chunk

    def _chunked(self, rest: bytes) -> tuple[bytes, bytes]:
        body = b""
        while True:
            while (eol := rest.find(b"\r\n")) < 0:
                rest += self._more()
            size = int(rest[:eol].split(b";", 1)[0], 16)
            rest = rest[eol + 2 :]
            while len(rest) < size + 2:
                rest += self._more()
            body += rest[:size]
            rest = rest[size + 2 :]
            if size == 0:
                return body, rest

    def close(self) -> None:
        self.sock.close()


def _keeps(version: str, headers: Mapping[str, str]) -> bool:
    connection = headers.get("connection", "").lower()
    if version == "HTTP/1.0":
        return connection == "keep-alive"
    return connection != "close"


def failure_of(answer: Answer) -> HttpError | None:
    """A 4xx or 5xx is a failure in locust's table, as FastHttpSession counts it."""
    return None if answer.status < 400 else HttpError(f"{answer.status}: {answer.text[:200]}")


def idle_socket_alive(sock: Any) -> bool:
    """An idle kept-alive socket is reusable when it has nothing to read: no FIN from
    a server that timed it out, no stray bytes. Asked with the real poll(): select()
    fails past descriptor 1023 (FD_SETSIZE; with 10,000 WebSockets open every HTTP
    socket is past it, and geventhttpclient took that for a dead socket), and gevent's
    select() yields to the hub even with a zero timeout."""
    if sock is None or sock.fileno() < 0:
        return False
    poller = _real_poll()
    poller.register(sock.fileno(), select.POLLIN)
    return not poller.poll(0)


class LeanHttp:
    """A user's HTTP client: JSON requests on kept-alive connections (one per request
    under way, as FastHttpSession's pool), each reported to locust as a request event."""

    def __init__(self, environment: Environment, base_url: str) -> None:
        url = urlsplit(base_url)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"an http:// host is needed, not {base_url!r}")
        self.environment = environment
        self.host = url.hostname
        self.port = url.port or 80
        # as FastHttpSession sends them (an app sends its own User-Agent too)
        self.common_headers = (
            f"Host: {url.netloc}\r\nUser-Agent: {USER_AGENT}\r\nAccept-Encoding: gzip, deflate"
        )
        self.idle: list[_Conn] = []

    def request(
        self,
        method: str,
        path: str,
        *,
        name: str | None = None,
        json: object = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer | None:
        """The answer, reported under ``name`` (the path by default) with its status
        (a 4xx or 5xx counts as a failure, as in FastHttpSession; callers rename or
        excuse through :meth:`report`); None, reported as a failure, when none came.
        """
        answer, elapsed_ms, error = self.send(method, path, json=json, headers=headers)
        if answer is None:
            self.report(method, name or path, elapsed_ms, 0, error)
            return None
        self.report(method, name or path, elapsed_ms, len(answer.body), failure_of(answer))
        return answer

    def send(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[Answer | None, float, BaseException | None]:
        """One request, unreported: (answer or None, milliseconds, the error if none)."""
        lines = [f"{method} {path} HTTP/1.1", self.common_headers]
        for key, value in (headers or {}).items():
            lines.append(f"{key}: {value}")
        body = b"" if json is None else orjson.dumps(json)
        if json is not None:
            lines.append("Content-Type: application/json")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        started = time.perf_counter()
        try:  # each send and read times out after TIMEOUT_S (the socket's timeout)
            answer = self._exchange(request)
        except (OSError, HttpError, ValueError) as exc:
            return None, (time.perf_counter() - started) * 1000.0, exc
        return answer, (time.perf_counter() - started) * 1000.0, None

    def _take(self) -> _Conn | None:
        """An idle connection still open, or None."""
        while self.idle:
            conn = self.idle.pop()
            if not conn.buf and idle_socket_alive(conn.sock):
                return conn
            conn.close()
        return None

    def _exchange(self, request: bytes) -> Answer:
        # Never sent twice: a POST that may have reached a handler is not repeated (a
        # kept-alive connection the server closed is found by _take, before sending).
        conn = self._take() or _Conn(self.host, self.port)
        try:
            answer, keep = conn.exchange(request)
        except BaseException:  # the connection is in an unknown state: dropped
            conn.close()
            raise
        if keep:
            self.idle.append(conn)
        else:
            conn.close()
        return answer

    def report(
        self,
        method: str,
        name: str,
        response_time_ms: float,
        length: int,
        exception: BaseException | None,
    ) -> None:
        fire: Callable[..., None] = self.environment.events.request.fire  # untyped in locust
        fire(
            request_type=method,
            name=name,
            response_time=response_time_ms,
            response_length=length,
            exception=exception,
            context={},
        )

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()
