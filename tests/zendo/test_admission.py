"""Admission control: a process held behind answers 503 `overloaded` at once, with
Retry-After, to requests and WebSocket handshakes alike; health checks still answer."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from core.appkeys import METRICS
from core.errors import Overloaded
from zendo.admission import (
    ADMISSION,
    ADMISSION_METRICS,
    BACKOFF,
    CLEARLY_LATE,
    MIN_ANSWERS,
    WINDOW_S,
    Admission,
    AdmissionMetrics,
)
from zendo.headroom import JobRate


async def _overloaded(resp: Any) -> None:
    assert resp.status == 503
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    assert int(resp.headers["Retry-After"]) >= 1
    body = await resp.json()
    assert body["code"] == "overloaded"
    assert body["status"] == 503


@pytest.fixture
def held() -> asyncio.Event:
    return asyncio.Event()


@pytest.fixture
async def client_of(
    app: web.Application, aiohttp_client: Callable[..., Any], held: asyncio.Event
) -> TestClient[Any, Any]:
    """The app with at most two requests in flight and a route that holds its request."""
    app[ADMISSION] = Admission(max_in_flight=2)
    app[ADMISSION_METRICS] = AdmissionMetrics(app[ADMISSION], JobRate(busy_limit=0.0), app[METRICS])

    async def slow(request: web.Request) -> web.Response:
        await held.wait()
        return web.json_response({"ok": True})

    app.router.add_get("/test/slow", slow)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return client


async def test_requests_past_the_bound_are_refused_at_once(
    client_of: TestClient[Any, Any], held: asyncio.Event
) -> None:
    client = client_of
    waiting = [asyncio.create_task(client.get("/test/slow")) for _ in range(2)]
    admission = client.app[ADMISSION]
    async with asyncio.timeout(5):
        while admission.in_flight < 2:  # noqa: ASYNC110 - polls a counter, no event
            await asyncio.sleep(0.01)
    async with asyncio.timeout(1):  # answered at once, not queued behind the others
        await _overloaded(await client.post("/auth/login", json={}))
        await _overloaded(await client.get("/ws"))  # before the upgrade
        health = await client.get("/healthz")
    assert health.status == 200
    held.set()
    for task in waiting:
        assert (await task).status == 200
    assert admission.in_flight == 0
    assert (await client.get("/test/slow")).status == 200
    assert admission.refused == 2
    exposed = await (await client.get("/metrics")).text()  # what an operator sees
    assert 'zendo_admission_refused_total{reason="in_flight"} 2.0' in exposed
    assert 'zendo_admission_refused_total{reason="loop_lag"} 0.0' in exposed
    assert "zendo_admission_limit 2.0" in exposed
    assert "zendo_admission_in_flight 0.0" in exposed


async def test_a_late_event_loop_sheds_new_work(client_of: TestClient[Any, Any]) -> None:
    client = client_of
    admission = client.app[ADMISSION]
    # The lag probe runs every 25 ms; hold the loop well past the bound so it says so.
    await asyncio.sleep(0.05)
    time.sleep(admission.max_loop_lag_s + 0.1)  # noqa: ASYNC251 - holding the loop is the point
    async with asyncio.timeout(1):  # the probe wakes late and records the lag
        while admission.loop_lag_s <= admission.max_loop_lag_s:  # noqa: ASYNC110
            await asyncio.sleep(0)
    await _overloaded(await client.get("/specialties"))
    assert (admission.refused, admission.refused_by_lag) == (1, 1)
    assert (await client.get("/readyz")).status in (200, 503)  # still answered
    async with asyncio.timeout(5):  # the loop caught up: admitted again
        while admission.loop_lag_s > admission.max_loop_lag_s:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    assert (await client.get("/specialties")).status == 200


async def test_work_in_progress_is_admitted_past_the_bound_for_new_work(
    client_of: TestClient[Any, Any],
) -> None:
    """Shedding turns new jobs away before it strands the ones under way."""
    client = client_of
    admission = client.app[ADMISSION]  # at most 2 in flight (the fixture)
    admission.in_flight = 3  # as if 3 requests were being handled: behind, not twice
    await _overloaded(await client.post("/interventions", json={}))
    progress = await client.post(f"/interventions/{uuid.uuid4()}/status", json={})
    assert progress.status == 401  # admitted: it reached the auth check
    operator = await client.get("/admin/match?lat=48.85&lon=2.35&specialty=PLUMBER")
    assert operator.status == 401  # an operator's request is kept the same way
    admission.in_flight = 4  # twice the bound: everything is shed
    await _overloaded(await client.post(f"/interventions/{uuid.uuid4()}/status", json={}))
    await _overloaded(await client.get("/admin/match?lat=48.85&lon=2.35&specialty=PLUMBER"))
    admission.in_flight = 0
    # Slow answers lowered the adaptive limit to 1: new work is refused past it; work under
    # way only past twice the far bound, like operators' requests (shed and retried, it
    # would stall its job and bring its retries to a machine already full).
    admission.max_in_flight = 100
    admission.limit, admission.in_flight = 1.0, 199
    await _overloaded(await client.post("/interventions", json={}))
    progress = await client.post(f"/interventions/{uuid.uuid4()}/status", json={})
    assert progress.status == 401
    operator = await client.get("/admin/match?lat=48.85&lon=2.35&specialty=PLUMBER")
    assert operator.status == 401
    admission.in_flight = 200
    await _overloaded(await client.post(f"/interventions/{uuid.uuid4()}/status", json={}))
    admission.in_flight = 0


def _window(admission: Admission, now: float, latency_s: float, in_flight: int) -> float:
    """One judged window: `in_flight` requests at once, answered in `latency_s`, as many
    times as the window needs answers to be judged."""
    while admission.window_started != now:
        for _ in range(in_flight):
            admission.admitted()
        for _ in range(in_flight):
            admission.answered(latency_s, now)
    return now + WINDOW_S


def test_slow_windows_lower_the_limit_for_new_work_and_prompt_ones_raise_it() -> None:
    admission = Admission(max_in_flight=100)
    assert admission.limit == 100
    now = _window(admission, WINDOW_S, 0.001, 10)
    assert admission.limit == 100  # prompt, but not in use: unchanged
    for _ in range(5):  # a CPU-bound machine: every answer late
        now = _window(admission, now, admission.latency_target_s * 2, 10)
    assert admission.limit < 10  # below what was in flight
    admission.in_flight = math.ceil(admission.limit)
    with pytest.raises(Overloaded):
        admission.check()
    admission.in_flight = admission.max_in_flight - 1  # work under way: not the limit's
    admission.check(in_progress=True)
    admission.check(in_progress=True, adaptive=False)  # operators: the same far bounds
    admission.in_flight = 2 * admission.max_in_flight  # past twice the far bound
    with pytest.raises(Overloaded):
        admission.check(in_progress=True)
    admission.in_flight = 0
    lowered = admission.limit
    for _ in range(30):  # prompt again, with the limit in use
        now = _window(admission, now, 0.001, int(admission.limit))
    assert admission.limit > lowered * 2
    for _ in range(200):
        now = _window(admission, now, 0.001, int(admission.limit))
    assert admission.limit <= admission.max_in_flight


def test_one_slow_answer_in_a_window_does_not_shed() -> None:
    """A GC pause or one slow query: the window's 90th percentile stays prompt."""
    admission = Admission(max_in_flight=100)
    for _ in range(40):
        admission.admitted()
    admission.answered(5.0, WINDOW_S)
    for _ in range(39):
        admission.answered(0.005, WINDOW_S)
    assert admission.window_started == WINDOW_S  # judged
    assert admission.limit == 100


def test_a_window_of_few_answers_is_not_judged() -> None:
    """At low traffic one slow request (an admin's query) does not lower the limit."""
    admission = Admission(max_in_flight=100)
    for _ in range(3):
        admission.admitted()
        admission.answered(5.0, 10.0)
    assert admission.limit == 100


def test_a_late_loop_counts_against_prompt_answers() -> None:
    admission = Admission(max_in_flight=100)
    admission.loop_lag_s = admission.latency_target_s
    now = _window(admission, WINDOW_S, 0.01, 50)
    _window(admission, now, 0.01, 50)
    assert admission.limit == pytest.approx(50 * BACKOFF)


def test_one_late_window_alone_does_not_shed_two_in_a_row_do() -> None:
    """A process descheduled for a few tens of milliseconds (other processes share the
    cores) makes one late window: not overload. Two in a row, or one far too late, are."""
    admission = Admission(max_in_flight=100)  # windows of exactly MIN_ANSWERS answers
    late = admission.latency_target_s * 1.5
    now = _window(admission, WINDOW_S, late, MIN_ANSWERS)
    assert admission.limit == 100
    now = _window(admission, now, 0.001, MIN_ANSWERS)  # prompt again: the next late one is alone
    now = _window(admission, now, late, MIN_ANSWERS)
    assert admission.limit == 100
    now = _window(admission, now, late, MIN_ANSWERS)  # the second in a row
    assert admission.limit == pytest.approx(MIN_ANSWERS * BACKOFF)
    fresh = Admission(max_in_flight=100)
    _window(fresh, WINDOW_S, fresh.latency_target_s * CLEARLY_LATE * 1.5, MIN_ANSWERS)
    assert fresh.limit == pytest.approx(MIN_ANSWERS * BACKOFF)


async def test_slow_answers_shed_new_work_over_http(
    client_of: TestClient[Any, Any], held: asyncio.Event
) -> None:
    client = client_of
    admission = client.app[ADMISSION]
    admission.max_in_flight = admission.limit = 50
    held.set()
    admission.latency_target_s = 0.0  # every answer is late
    async with asyncio.timeout(10):
        while admission.limit == 50:
            assert (await client.get("/test/slow")).status == 200
            await asyncio.sleep(0.01)
    assert admission.limit < 50
    # Requests in flight up to the lowered limit: the next new one is refused at once.
    admission.in_flight = int(admission.limit)
    await _overloaded(await client.post("/interventions", json={}))
    progress = await client.post(f"/interventions/{uuid.uuid4()}/status", json={})
    assert progress.status == 401  # work under way is admitted (it reached the auth check)
    handshake = await client.get("/ws")  # bounded by the gateway's arrivals, not by this
    assert handshake.status != 503
    admission.in_flight = 0


def test_a_verdict_is_counted_only_as_a_refusal() -> None:
    admission = Admission(max_in_flight=4)
    admission.in_flight = 4
    assert admission.judge() == (True, False)
    assert admission.judge(in_progress=True) == (False, False)  # its bounds are doubled
    assert admission.refused == 0  # judged, not refused yet
    admission.loop_lag_s = admission.max_loop_lag_s * 3
    assert admission.judge(in_progress=True) == (True, True)
    assert admission.refuses(in_progress=True)
    assert (admission.refused, admission.refused_by_lag) == (1, 1)
