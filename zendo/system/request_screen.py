"""New jobs and work under way refused in the loop turn that reads them, while the
process is behind.

A request reaches its handler two loop turns after its bytes are read (Python 3.11: the
protocol wakes its `start()` coroutine, which makes a task for the handler), and a
process that sheds load is one whose turns are long: with 10 ms turns, a refused
`POST /interventions` waited 20 ms more for those two before admission control could
say 503 (measured below).

`ScreenedRequestHandler` is aiohttp's request handler with one more step in
`data_received`: a connection that is idle between requests (its `start()` waiting, no
request queued) and whose read is exactly one whole `POST` to a route of `ROUTES` (the
request line, headers, and the body its Content-Length announces; no Transfer-Encoding,
Expect, Upgrade, Origin or `Connection: close`) is judged there by admission control
(`Admission.refuses`, the very rule of `admission_middleware`: a new job by the new-work
bounds, a status change, cancellation or offer answer by the doubled ones). Refused, it gets the
answer the middleware would give (503 problem+json `overloaded`, `Retry-After`, the
security headers, its `X-Request-Id`) written at once, on a connection that stays open;
the bytes never reach the parser. Anything else goes on to aiohttp as usual, and so does
an admitted request, admitted here rather than two turns later by the middleware: it
counts in flight (a new job takes its token) from the turn that read it, so a burst read
in one long turn meets its bound here. Only a request read whole is judged here: aiohttp
parses it in the same call, so within two turns it reaches the middleware (which sees it
was admitted) or its connection ends, which gives the place back (`Admission.release`).
Judged here but admitted only by the middleware, a long turn's requests all passed the
door and most refusals came two turns later, through the middleware (twice the README's
rate on a medium machine, 12-07: 859 of 1,076; locust saw a 503 in p99 64 ms). A refusal
here counts in `zendo_http_requests_total{route, status="503"}` (the route's template, as
the middleware counts it) and the admission's refusals; it writes no access-log line (the
server is shedding load: the counters tell the ops team).

Only these routes: new jobs are what admission turns away first, and work under way is
refused when the loop is furthest behind (at twice the README's rate, status changes
refused through the middleware were answered in p50 43-76 ms, p99 150-160 ms); their
requests are alike enough to be read off their bytes without aiohttp's parser (an id
segment of letters, digits and hyphens only: anything else is aiohttp's).

Measured (a process kept busy by 50 ready callbacks of 0.2 ms each, so ~10 ms turns;
20 keep-alive clients): a refusal answered in 9.4 ms (median) here against 30.5 ms
through the middleware; server CPU per refusal 12 µs against 46 µs (no access log).

Once a connection carries a WebSocket, the reads that begin with a close frame, and
its end, go through a `PerTurn` (`gateway/turns.py`), `WEBSOCKET_ENDS_PER_TURN` a loop
turn. The loop hands every readable socket's bytes to its protocol in one pass, and
each close read wakes its socket's task, whose teardown runs in the next turn: when
thousands of sockets close at once (a network blip, a deploy, the end of a load test)
that pass and that turn grew to a second and more, and a request arriving meanwhile
waited behind all of them (a mass close of 10,000 sockets: up to 0.7-1.3 s; 0.1-0.4 s
with the ends shared, BENCHMARKS.md). A close read that finds the turn's share spent is
held: its bytes are kept, the connection stops reading (the kernel holds what follows,
its end included) and a later turn feeds them, first come first served; a connection
that ends while the share is spent ends in a later turn too, after the bytes it holds.
Other WebSocket reads (fixes, offer answers) go on at once: held too, a socket flat
out was fed a turn's share at a time, and the gateway's ceiling fell from 236,000 to
34,000-57,000 fixes a second (12-06, bench_gateway). HTTP requests, handshakes among
them, are never held.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any, Final

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from prometheus_client import Counter

from core import appkeys
from core.errors import Overloaded
from gateway.turns import PerTurn
from zendo.admission import (
    ADMISSION,
    JOB_RATE,
    NEW_JOB_PATH,
    OVERLOADED_DETAIL,
    RETRY_AFTER_S,
    Admission,
)
from zendo.headroom import JobRate
from zendo.middleware import SECURITY_HEADERS, new_request_id, problem_document

NEW_JOB = NEW_JOB_PATH
# Work under way, one route per suffix of admission's PROGRESS_SUFFIXES (a test keeps
# them in step): (prefix, suffix) -> template.
UNDER_WAY = {
    (b"/interventions/", b"/status"): "/interventions/{id}/status",
    (b"/interventions/", b"/cancel"): "/interventions/{id}/cancel",
    (b"/offers/", b"/accept"): "/offers/{offer_id}/accept",
    (b"/offers/", b"/decline"): "/offers/{offer_id}/decline",
}
ROUTES = (NEW_JOB, *UNDER_WAY.values())
_METHOD = b"POST "
_VERSION = b" HTTP/1.1"
_MAX_ID = 64
_ID_BYTES = frozenset(b"0123456789abcdefABCDEFghijklmnopqrstuvwxyzGHIJKLMNOPQRSTUVWXYZ-")
_HEAD_END = b"\r\n\r\n"
# Headers that send a request to aiohttp: a body it must stream or acknowledge, a
# browser's CORS answer, an upgrade, a connection to close after the answer.
_NOT_HERE = frozenset((b"transfer-encoding", b"expect", b"upgrade", b"origin"))
_STATUS = 503
#: WebSocket close reads and ends let through per turn: 64 x 40-90 µs = 3-6 ms of a turn
WEBSOCKET_ENDS_PER_TURN: Final = 64
#: the first byte of a client's close frame (FIN, opcode 8)
_CLOSE_FRAME = 0x88


@functools.cache
def _body() -> bytes:
    return orjson.dumps(
        problem_document(_STATUS, Overloaded.code, Overloaded.title, OVERLOADED_DETAIL)
    )


@functools.cache
def _head_before_id() -> bytes:
    """The answer's status line and headers, up to the request's id."""
    headers = [
        ("Content-Type", "application/problem+json"),
        ("Content-Length", str(len(_body()))),
        ("Retry-After", str(RETRY_AFTER_S)),
        *SECURITY_HEADERS,
    ]
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return f"HTTP/1.1 {_STATUS} Service Unavailable\r\n{lines}".encode()


_dates: dict[int, bytes] = {}


def _date(now: float) -> bytes:
    second = int(now)
    date = _dates.get(second)
    if date is None:
        _dates.clear()
        date = _dates[second] = formatdate(second, usegmt=True).encode()
    return date


def refusal(request_id: bytes, now: float) -> bytes:
    """The whole answer to a refused new job."""
    return b"".join(
        (
            _head_before_id(),
            b"X-Request-Id: ",
            request_id,
            b"\r\nDate: ",
            _date(now),
            b"\r\n\r\n",
            _body(),
        )
    )


def route_of(target: bytes) -> tuple[str, bool] | None:
    """The template of a screened route `target` is a path of, and whether it is work
    under way; None for any other target."""
    if target == NEW_JOB.encode():
        return NEW_JOB, False
    for (prefix, suffix), template in UNDER_WAY.items():
        if target.startswith(prefix) and target.endswith(suffix):
            segment = target[len(prefix) : len(target) - len(suffix)]
            if 0 < len(segment) <= _MAX_ID and _ID_BYTES.issuperset(segment):
                return template, True
    return None


@dataclass(frozen=True, slots=True)
class Screened:
    """A whole request the door may answer."""

    route: str  # the route's template
    in_progress: bool  # work under way (admission's doubled bounds)
    request_id: bytes  # its X-Request-Id (b"" when it has none)


def request_route(data: bytes) -> tuple[str, bool] | None:
    """`route_of` the request line `data` starts with, if a whole one: POST, HTTP/1.1."""
    line_end = data.find(b"\r\n")
    if line_end < 0 or not data.startswith(_METHOD):
        return None
    line = data[:line_end]
    if not line.endswith(_VERSION):
        return None
    return route_of(line[len(_METHOD) : len(line) - len(_VERSION)])


def read_whole(data: bytes) -> Screened | None:
    """`data` read as exactly one whole request to a screened route; None when it goes
    to aiohttp."""
    route = request_route(data)
    return None if route is None else _read_head(data, route)


def _read_head(data: bytes, route: tuple[str, bool]) -> Screened | None:
    """`read_whole` once `request_route` gave `data`'s route: its headers and body."""
    line_end = data.find(b"\r\n")
    end = data.find(_HEAD_END)
    if end < 0:
        return None
    length = -1
    request_id = b""
    for header in data[line_end + 2 : end].split(b"\r\n"):
        name, colon, value = header.partition(b":")
        if not colon:
            return None
        name = name.strip().lower()
        value = value.strip()
        if name == b"content-length":
            if not value.isdigit() or length >= 0:
                return None
            length = int(value)
        elif name == b"x-request-id":
            request_id = value[:64]
        elif name in _NOT_HERE or (name == b"connection" and value.lower() != b"keep-alive"):
            return None
    if length < 0 or end + len(_HEAD_END) + length != len(data):
        return None
    return Screened(route[0], route[1], request_id)


class Door:
    """Admission control's judgement of a screened request, before aiohttp's parser."""

    __slots__ = ("_admission", "_job_rate", "_refused")

    def __init__(self, admission: Admission, job_rate: JobRate, requests: Counter) -> None:
        self._admission = admission
        self._job_rate = job_rate
        self._refused = {
            route: requests.labels(route=route, status=str(_STATUS)) for route in ROUTES
        }

    @classmethod
    def of(cls, app: web.Application) -> Door:
        return cls(app[ADMISSION], app[JOB_RATE], app[appkeys.METRICS].http_requests)

    def answer(self, data: bytes, now: float, connection: object) -> bytes | None:
        """The refusal to write for `data`, read from `connection` (`now`: the wall
        clock, for its Date), or None: it goes to aiohttp. Only a request read whole is
        judged here; admitted, it is in flight from now (its new job's token taken), and
        aiohttp, which parses it in this same call, hands it to the middleware within two
        loop turns. A head still incomplete is aiohttp's and the middleware's alone: held
        here, a client stalling mid-head would keep a place in flight for as long as its
        connection lasts."""
        route = request_route(data)
        if route is None:
            return None
        screened = _read_head(data, route)
        if screened is None:
            return None
        refuse, lagging = self._admission.judge(in_progress=route[1])
        by_rate = False
        clock = time.perf_counter()
        if not refuse and route[0] == NEW_JOB:
            refuse = by_rate = self._job_rate.full(clock)
        if not refuse:
            if self._admission.hold(connection) and route[0] == NEW_JOB:
                self._job_rate.take(clock)
            return None
        if by_rate:
            self._job_rate.count_refusal()
        else:
            self._admission.count_refusal(lagging=lagging)
        self._refused[screened.route].inc()
        return refusal(screened.request_id or new_request_id().encode(), now)

    def release(self, connection: object) -> None:
        """`connection` ended: what the door admitted of it and no handler met leaves."""
        self._admission.release(connection)


class ScreenedRequestHandler(RequestHandler):
    """aiohttp's request handler, with a `Door` in front of its parser and, once it
    carries a WebSocket, its close reads and its end let through by a `PerTurn`."""

    __slots__ = ("_door", "_ends", "_held", "_held_paused", "_lost")

    def __init__(
        self, manager: web.Server, *, door: Door, ends: PerTurn | None = None, **kwargs: Any
    ) -> None:
        super().__init__(manager, **kwargs)
        self._door = door
        self._ends = ends
        self._held: bytes | None = None
        self._held_paused = False
        self._lost: tuple[BaseException | None] | None = None  # its end, when held too

    def data_received(self, data: bytes) -> None:
        if self._upgraded and self._ends is not None:
            if self._held is not None:  # more bytes while waiting: after the others
                self._hold(self._held + data)
            elif data[0] != _CLOSE_FRAME or self._ends.admit():
                super().data_received(data)
            else:
                self._hold(data)
                self._ends.hold(self.release_held)
            return
        waiter = self._waiter
        # idle between requests (so the answer cannot overtake another's), and a POST
        transport = self.transport
        if (
            waiter is not None
            and not waiter.done()
            and not self._messages
            and transport is not None
            and data[:5] == b"POST "
        ):
            answer = self._door.answer(data, time.time(), self)
            if answer is not None:
                transport.write(answer)
                # a connection in use is not idle: aiohttp's keep-alive timer starts over
                self._next_keepalive_close_time = self._loop.time() + self._keepalive_timeout
                return
        super().data_received(data)

    def _hold(self, data: bytes) -> None:
        # and reading stops (its end too, EOF, read in its turn); again if aiohttp's own
        # flow control resumed it meanwhile
        self._held = data
        self._held_paused = True
        self._pause_transport_reading()

    def release_held(self) -> bool:
        """What the connection held goes to aiohttp (its bytes, then its end), and it
        reads again; its place in the turn is taken."""
        data, self._held = self._held, None
        lost, self._lost = self._lost, None
        if data is not None:
            super().data_received(data)
        if lost is not None:
            super().connection_lost(lost[0])
        elif self._held_paused:
            self._held_paused = False
            if not (self._reading_paused or self._buffer_paused):
                self._resume_transport_reading()
        return True

    def connection_lost(self, exc: BaseException | None) -> None:
        self._door.release(self)
        # A WebSocket's end comes with the close reads: thousands of them in one pass
        # (each ~80 µs: the handler's task woken, its session torn down), so it takes
        # its place in the turns, after any bytes the connection still holds.
        ends = self._ends
        if ends is not None and self._upgraded:
            if self._held is not None:
                self._lost = (exc,)
                return
            if not ends.admit():
                self._lost = (exc,)
                ends.hold(self.release_held)
                return
        super().connection_lost(exc)


def screened(
    server: web.Server, door: Door, ends: PerTurn | None = None
) -> Callable[[], ScreenedRequestHandler]:
    """The protocol factory of `server` (a runner's), its handlers screened by `door`
    and their WebSocket close reads and ends let through by `ends`. It passes the handler what
    `web.Server.__call__` does: its loop and keyword arguments (the access logger, the
    timeouts and limits of the runner)."""
    kwargs = dict(server._kwargs)
    loop = server._loop

    def factory() -> ScreenedRequestHandler:
        return ScreenedRequestHandler(server, loop=loop, door=door, ends=ends, **kwargs)

    return factory
