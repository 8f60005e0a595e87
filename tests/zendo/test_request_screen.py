"""While admission control sheds load, a new job (and, past the doubled bounds, work under
way) is refused in the loop turn that reads it (zendo/system/request_screen.py): the middleware's own answer, on a connection that
stays open. Anything else, and every request while the process keeps up, goes on to
aiohttp untouched."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from email.utils import parsedate_to_datetime

import orjson
import pytest
from aiohttp import web

from core.metrics import Metrics
from zendo.admission import (
    ADMISSION,
    JOB_RATE,
    PROGRESS_SUFFIXES,
    Admission,
    admission_middleware,
)
from zendo.headroom import MIN_RATE, JobRate
from zendo.middleware import error_middleware
from zendo.system.listener import MultiAcceptSite
from zendo.system.request_screen import ROUTES, UNDER_WAY, Door, read_whole, screened

BODY = b'{"specialty":"PLUMBER","lat":48.85,"lon":2.35,"description":"leak"}'


def new_job(*headers: bytes, body: bytes = BODY, target: bytes = b"/interventions") -> bytes:
    head = [b"POST " + target + b" HTTP/1.1", b"Host: zendo.test", *headers]
    if not any(h.lower().startswith(b"content-length") for h in headers):
        head.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def request_id(data: bytes) -> bytes | None:
    screened = read_whole(data)
    return None if screened is None else screened.request_id


def test_a_whole_new_job_is_read_with_its_request_id() -> None:
    assert request_id(new_job()) == b""
    assert request_id(new_job(b"X-Request-Id: abc-1")) == b"abc-1"
    assert request_id(new_job(b"connection: Keep-Alive")) == b""
    assert request_id(new_job(body=b"")) == b""  # the route will say 422; not here
    screened = read_whole(new_job())
    assert screened is not None
    assert (screened.route, screened.in_progress) == ("/interventions", False)


JOB_ID = b"7d9f4a52-2c1e-4f0b-9a57-3f2d8c1b6e90"
STATUS = b'{"status":"EN_ROUTE"}'


@pytest.mark.parametrize(
    ("target", "route"),
    [
        (b"/interventions/" + JOB_ID + b"/status", "/interventions/{id}/status"),
        (b"/interventions/" + JOB_ID + b"/cancel", "/interventions/{id}/cancel"),
        (b"/offers/" + JOB_ID + b"/accept", "/offers/{offer_id}/accept"),
        (b"/offers/not-a-uuid-1/decline", "/offers/{offer_id}/decline"),  # the route says 404
    ],
)
def test_work_under_way_is_read_with_its_routes_template(target: bytes, route: str) -> None:
    screened = read_whole(new_job(b"X-Request-Id: w-1", target=target, body=STATUS))
    assert screened is not None
    assert (screened.route, screened.in_progress, screened.request_id) == (route, True, b"w-1")


def test_the_screened_templates_are_the_apps_own_routes(app: web.Application) -> None:
    templates = {r.canonical for r in app.router.resources()}
    assert set(ROUTES) <= templates
    # the door's work under way is the middleware's: one route per suffix, each its own
    assert sorted(suffix.decode() for _, suffix in UNDER_WAY) == sorted(PROGRESS_SUFFIXES)
    assert all(t.endswith(PROGRESS_SUFFIXES) for t in UNDER_WAY.values())


@pytest.mark.parametrize(
    "data",
    [
        new_job()[:-1],  # its body not all there yet
        new_job() + new_job(),  # pipelined: the second is aiohttp's
        new_job() + b"x",
        new_job(b"Transfer-Encoding: chunked"),
        new_job(b"Origin: https://app.zendo.test"),  # a browser: CORS headers on the answer
        new_job(b"Expect: 100-continue"),
        new_job(b"Connection: close"),
        new_job(b"Content-Length: 3", b"Content-Length: 3", body=b"abc"),
        new_job(b"Content-Length: -1"),
        new_job(b"no colon here"),
        new_job().replace(b"HTTP/1.1", b"HTTP/1.0", 1),
        new_job().replace(b"/interventions", b"/interventions/abc/rate", 1),
        new_job().replace(b"/interventions", b"/interventions?x=1", 1),
        new_job(target=b"/interventions//status"),
        new_job(target=b"/interventions/a/b/status"),
        new_job(target=b"/interventions/a%2Fb/status"),
        new_job(target=b"/interventions/" + b"a" * 65 + b"/status"),
        new_job(target=b"/offers/" + JOB_ID + b"/accept?x=1"),
        new_job(target=b"/interventions/" + JOB_ID + b"/status", body=b"")[:-3],
        new_job().replace(b"POST", b"PUT", 1),
        b"POST /interventions HTTP/1.1\r\nHost: zendo.test\r\n",  # the head in pieces
    ],
)
def test_anything_else_goes_to_aiohttp(data: bytes) -> None:
    assert read_whole(data) is None


def test_the_door_refuses_only_when_admission_does() -> None:
    admission = Admission(max_in_flight=2)
    metrics = Metrics.create()
    door = Door(admission, JobRate(busy_limit=0.0), metrics.http_requests)
    assert door.answer(new_job(), 0.0, object()) is None  # keeping up: aiohttp's
    admission.in_flight = 2
    answer = door.answer(new_job(b"X-Request-Id: r-1"), 1_700_000_000.0, object())
    assert answer is not None and answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"\r\nX-Request-Id: r-1\r\n" in answer
    assert b"\r\nDate: Tue, 14 Nov 2023 22:13:20 GMT\r\n" in answer
    assert door.answer(new_job(b"Origin: https://x.test"), 0.0, object()) is None
    assert admission.refused == 1
    sample = metrics.registry.get_sample_value(
        "zendo_http_requests_total", {"route": "/interventions", "status": "503"}
    )
    assert sample == 1.0


def test_work_under_way_is_refused_only_past_the_doubled_bounds() -> None:
    admission = Admission(max_in_flight=100)
    admission.limit = 10.0
    metrics = Metrics.create()
    door = Door(admission, JobRate(busy_limit=0.0), metrics.http_requests)
    status_change = new_job(target=b"/interventions/" + JOB_ID + b"/status", body=STATUS)
    admission.in_flight = 199  # past the new-work limit: new jobs refused, work under way not
    assert door.answer(new_job(), 0.0, object()) is not None
    assert door.answer(status_change, 0.0, object()) is None
    assert admission.in_flight == 200  # admitted here: in flight at once
    answer = door.answer(status_change, 0.0, object())  # twice the far bound: refused too
    assert answer is not None and answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert admission.refused == 2

    def refused(route: str) -> float | None:
        return metrics.registry.get_sample_value(
            "zendo_http_requests_total", {"route": route, "status": "503"}
        )

    assert refused("/interventions") == 1.0
    assert refused("/interventions/{id}/status") == 1.0


def test_the_door_refuses_new_jobs_past_the_busy_machine_limit() -> None:
    admission = Admission(max_in_flight=100)
    job_rate = JobRate(busy_limit=0.85, limit=MIN_RATE, refilled=time.perf_counter())
    metrics = Metrics.create()
    door = Door(admission, job_rate, metrics.http_requests)
    status_change = new_job(target=b"/interventions/" + JOB_ID + b"/status", body=STATUS)
    answer = door.answer(new_job(), 0.0, object())
    assert answer is not None and answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"\r\nRetry-After: 1\r\n" in answer
    assert door.answer(status_change, 0.0, object()) is None  # only new jobs
    # a head it cannot read whole is aiohttp's, and the middleware's to judge and count
    assert door.answer(new_job(b"Origin: https://x.test"), 0.0, object()) is None
    assert (job_rate.refused, admission.refused) == (1, 0)
    job_rate.tokens = 1.0  # a token back: through, the token taken here, with its place
    connection = object()
    assert door.answer(new_job(), 0.0, connection) is None
    assert job_rate.tokens < 0.5 and (job_rate.refused, job_rate.admitted) == (1, 1)
    assert connection in admission.held


def test_what_the_door_admits_counts_in_flight_at_once_so_a_burst_meets_its_bound() -> None:
    """The requests one long loop turn reads all meet the door before any reaches the
    middleware: each admitted one takes its place there, and the rest are refused there."""
    admission = Admission(max_in_flight=100)
    admission.limit = 2.0
    door = Door(admission, JobRate(busy_limit=0.0), Metrics.create().http_requests)
    first, second, third = object(), object(), object()
    assert door.answer(new_job(), 0.0, first) is None
    assert door.answer(new_job(), 0.0, second) is None
    assert admission.in_flight == 2 and admission.held == {first, second}
    answer = door.answer(new_job(), 0.0, third)
    assert answer is not None and answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert admission.refused == 1 and third not in admission.held
    # the first reaches the middleware: already counted; the second's connection ends first
    assert admission.claim(first) and not admission.claim(first)
    admission.release(second)
    admission.release(second)  # once only
    assert admission.in_flight == 1 and admission.held == set()
    admission.answered(0.001, 1.0)
    assert admission.in_flight == 0


def test_a_connection_the_door_reads_twice_before_the_middleware_holds_one_place() -> None:
    admission = Admission(max_in_flight=100)
    job_rate = JobRate(busy_limit=0.85, limit=10.0, tokens=5.0, refilled=time.perf_counter())
    door = Door(admission, job_rate, Metrics.create().http_requests)
    connection = object()
    assert door.answer(new_job(), 0.0, connection) is None
    # the body of the same request, as it happens beginning with a request line
    assert door.answer(new_job(), 0.0, connection) is None
    assert admission.in_flight == 1 and job_rate.admitted == 1 and 3.5 < job_rate.tokens < 4.5


class Served:
    def __init__(
        self, site: MultiAcceptSite, admission: Admission, server: web.Server, routed: list[str]
    ) -> None:
        self.site, self.admission, self.server, self.routed = site, admission, server, routed

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.site.port)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    """A server as `zendo serve` runs one: the listener, the screened handlers, admission
    control and the error middleware in front of a new-job route and a slow one."""
    routed: list[str] = []
    release = asyncio.Event()

    async def create(request: web.Request) -> web.Response:
        await request.read()
        routed.append("create")
        return web.json_response({"id": "job"}, status=201)

    async def status(request: web.Request) -> web.Response:
        await request.read()
        routed.append("status")
        return web.json_response({"status": "EN_ROUTE"})

    async def slow(request: web.Request) -> web.Response:
        routed.append("slow")
        await release.wait()
        return web.json_response({})

    app = web.Application(middlewares=[error_middleware, admission_middleware])
    admission = app[ADMISSION] = Admission(max_in_flight=4)
    job_rate = app[JOB_RATE] = JobRate(busy_limit=0.0)
    app.router.add_post("/interventions", create)
    app.router.add_post("/interventions/{id}/status", status)
    app.router.add_post("/slow", slow)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    assert runner.server is not None
    door = Door(admission, job_rate, Metrics.create().http_requests)
    site = MultiAcceptSite(runner, "127.0.0.1", 0, protocol_factory=screened(runner.server, door))
    await site.start()
    try:
        yield Served(site, admission, runner.server, routed)
    finally:
        release.set()
        await runner.cleanup()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status_line, *lines = head.decode().rstrip("\r\n").split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines)}
    body = await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, body


async def test_a_shed_new_job_gets_the_middlewares_answer_on_a_connection_kept_open(
    served: Served,
) -> None:
    _reader, writer = await served.connect()
    try:
        # through aiohttp and the middleware first: the answer to compare with
        writer.write(b"POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
        await asyncio.sleep(0.1)  # in the handler: in flight
        served.admission.in_flight = served.admission.max_in_flight
        other_reader, other_writer = await served.connect()
        other_writer.write(new_job().replace(b"Host", b"Origin: https://x.test\r\nHost", 1))
        status, _headers, via_aiohttp = await read_response(other_reader)
        assert status == 503
        other_writer.close()
        served.admission.in_flight = 1  # the slow request alone
        served.admission.limit = 1.0  # ... is all this process may take on now

        refused_before = served.admission.refused
        conn_reader, conn_writer = await served.connect()
        for attempt in range(3):  # each in the turn that reads it, the connection kept
            conn_writer.write(new_job(b"X-Request-Id: job-%d" % attempt))
            status, headers, body = await read_response(conn_reader)
            assert status == 503
            assert headers["retry-after"] == "1"
            assert headers["content-type"] == "application/problem+json"
            assert headers["cache-control"] == "no-store"
            assert headers["x-request-id"] == f"job-{attempt}"
            assert abs(parsedate_to_datetime(headers["date"]).timestamp() - time.time()) < 5
            assert orjson.loads(body) == orjson.loads(via_aiohttp)  # the same document
        assert served.admission.refused == refused_before + 3
        assert served.routed == ["slow"]

        served.admission.limit = 4.0  # keeping up again: the same connection gets in
        conn_writer.write(new_job())
        status, _headers, _body = await read_response(conn_reader)
        assert status == 201
        assert served.routed == ["slow", "create"]
        conn_writer.close()
    finally:
        writer.close()


async def test_an_answer_never_overtakes_the_one_before_on_its_connection(
    served: Served,
) -> None:
    """A new job sent behind a request still being handled is aiohttp's to answer, in
    order, even when it is refused."""
    served.admission.limit = 1.0
    reader, writer = await served.connect()
    try:
        writer.write(b"POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
        await asyncio.sleep(0.1)
        writer.write(new_job())  # pipelined behind the slow one
        await asyncio.sleep(0.1)
        assert served.routed == ["slow"]
        with pytest.raises(TimeoutError):  # nothing may come before the slow answer
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 0.2)
    finally:
        writer.close()


async def test_a_malformed_new_job_while_shedding_gets_aiohttps_400(served: Served) -> None:
    """A head the door cannot read whole (here a Content-Length that is not a number)
    is aiohttp's: a clear 400, never a hang or a half answer."""
    served.admission.in_flight = served.admission.max_in_flight  # shedding
    refused_before = served.admission.refused
    reader, writer = await served.connect()
    try:
        writer.write(new_job(b"Content-Length: abc"))
        status, _headers, _body = await read_response(reader)
        assert status == 400
        assert served.admission.refused == refused_before  # not judged by the door
        assert served.routed == []
    finally:
        writer.close()
        served.admission.in_flight = 0


async def test_a_status_change_gets_in_while_new_jobs_are_shed_and_not_past_twice_the_bounds(
    served: Served,
) -> None:
    change = new_job(target=b"/interventions/" + JOB_ID + b"/status", body=STATUS)
    served.admission.limit = 1.0
    # past the new-work limit (1), under the doubled bound for work under way (twice the
    # fixture's far bound of 4)
    served.admission.in_flight = 5
    reader, writer = await served.connect()
    try:
        writer.write(new_job())
        assert (await read_response(reader))[0] == 503
        writer.write(change)
        assert (await read_response(reader))[0] == 200
        assert served.routed == ["status"]
        served.admission.in_flight = 8  # the doubled bound: refused at the door
        writer.write(change)
        status, headers, body = await read_response(reader)
        assert status == 503 and headers["retry-after"] == "1"
        assert orjson.loads(body)["code"] == "overloaded"
        assert served.routed == ["status"]
    finally:
        writer.close()


async def wait_until(condition: Callable[[], bool]) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met within 2 s")


async def test_a_job_the_door_admits_is_counted_once_and_leaves_when_answered(
    served: Served,
) -> None:
    reader, writer = await served.connect()
    try:
        for _ in range(3):  # the same connection, a request at a time
            writer.write(new_job())
            assert (await read_response(reader))[0] == 201
            await wait_until(lambda: served.admission.in_flight == 0)
            assert served.admission.held == set()
        assert served.routed == ["create"] * 3
    finally:
        writer.close()


async def test_a_head_stalled_halfway_holds_no_place_in_flight(served: Served) -> None:
    """Only a request read whole is admitted at the door: a client stalling mid-head must
    not keep a place in flight for as long as its connection lasts."""
    _reader, writer = await served.connect()
    try:
        writer.write(new_job().split(b"\r\n\r\n")[0])  # the rest of its head never comes
        await asyncio.sleep(0.2)
        assert served.admission.in_flight == 0 and served.admission.held == set()
        assert served.routed == []
    finally:
        writer.close()


async def test_a_connection_ending_before_its_admitted_request_is_handled_gives_its_place_back(
    served: Served,
) -> None:
    reader, writer = await served.connect()
    try:
        writer.write(new_job())  # a first job: the connection is then idle, its door open
        assert (await read_response(reader))[0] == 201
        await wait_until(lambda: served.admission.in_flight == 0)
        (handler,) = served.server.connections
        # A long turn: the next request and the connection's end are read in the same
        # one, before a handler could start.
        handler.data_received(new_job())
        assert served.admission.in_flight == 1 and served.admission.held == {handler}
        handler.connection_lost(None)
        assert served.admission.in_flight == 0 and served.admission.held == set()
        await asyncio.sleep(0.1)
        assert served.routed == ["create"] and served.admission.in_flight == 0
    finally:
        writer.close()


async def test_a_malformed_request_is_aiohttps_400_and_leaves_nothing_in_flight(
    served: Served,
) -> None:
    reader, writer = await served.connect()
    try:
        writer.write(new_job(b"Content-Length: abc"))  # keeping up: not refused at the door
        status, _headers, _body = await read_response(reader)
        assert status == 400  # aiohttp's answer, and it closes the connection
        await wait_until(lambda: served.admission.in_flight == 0)
        assert served.admission.held == set() and served.routed == []
    finally:
        writer.close()
