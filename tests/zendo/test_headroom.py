"""The new-job rate limit on a busy machine (zendo/headroom.py): its law, its reading of
/proc/stat, and the 503 a new job gets past it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from core.appkeys import METRICS
from zendo.admission import ADMISSION, ADMISSION_METRICS, JOB_RATE, AdmissionMetrics
from zendo.headroom import (
    BURST_S,
    ENGAGE_RATE,
    MAX_CUT,
    MAX_GROWTH,
    MIN_RATE,
    RECENT_READINGS,
    BusyShare,
    JobRate,
)


def _asked(rate: JobRate, n: int, start: float, spacing: float) -> int:
    """`n` new jobs `spacing` seconds apart from `start`; how many went through."""
    return sum(rate.take(start + i * spacing) for i in range(n))


def _engaged() -> JobRate:
    """A limit just set: 50 new jobs admitted in a second on a machine 95 % busy."""
    rate = JobRate(busy_limit=0.85)
    _asked(rate, 50, 0.0, 0.02)
    rate.observe(0.95, 1.0, 1.0)
    assert rate.limit is not None
    return rate


def test_unlimited_until_the_machine_is_busy_past_the_bound() -> None:
    rate = JobRate(busy_limit=0.85)
    assert _asked(rate, 40, 0.0, 0.025) == 40
    rate.observe(0.80, 1.0, 1.0)
    assert rate.limit is None
    assert _asked(rate, 40, 1.0, 0.025) == 40


def test_a_few_jobs_on_a_busy_machine_are_not_limited() -> None:
    rate = JobRate(busy_limit=0.85)
    _asked(rate, int(ENGAGE_RATE) - 1, 0.0, 0.1)
    rate.observe(0.99, 1.0, 1.0)
    assert rate.limit is None


def test_busy_past_the_bound_limits_below_what_was_admitted() -> None:
    rate = _engaged()
    assert rate.limit is not None
    assert MIN_RATE <= rate.limit < 50
    limit = rate.limit
    # arrivals twice the limit for 2 s: about the limit a second go through, the rest refused
    through = _asked(rate, int(4 * limit), 1.0, 1.0 / (2 * limit))
    assert limit * 2 <= through <= limit * 2 + limit * BURST_S + 1
    assert rate.refused == int(4 * limit) - through


def test_the_limit_keeps_falling_while_busy_and_grows_back_when_not() -> None:
    rate = JobRate(busy_limit=0.85)
    _asked(rate, 50, 0.0, 0.02)
    rate.observe(0.97, 1.0, 1.0)
    first = rate.limit
    assert first is not None
    _asked(rate, 100, 1.0, 0.01)
    rate.observe(0.97, 1.0, 2.0)
    assert rate.limit is not None and first * (1 - MAX_CUT) <= rate.limit < first
    low = rate.limit
    for t in range(3, 6):  # quiet readings: the smoothed share comes down, the limit grows
        _asked(rate, 100, float(t - 1), 0.01)
        rate.observe(0.5, 1.0, float(t))
    assert rate.limit is not None and rate.limit > low
    assert rate.limit <= low * (1 + MAX_GROWTH) ** 3 + 1e-9


def test_a_limit_that_refuses_grows_back_just_below_the_bound() -> None:
    # a machine 2-4 % under its bound, 50 new jobs asked a second: the limit that refuses
    # some of them climbs back towards them rather than staying where one busy second set it
    rate = JobRate(busy_limit=0.9)
    _asked(rate, 50, 0.0, 0.02)
    rate.observe(1.0, 1.0, 1.0)
    engaged = rate.limit
    assert engaged is not None and engaged < 50
    for t in range(2, 62):
        _asked(rate, 50, float(t - 1), 0.02)
        rate.observe(0.87, 1.0, float(t))
    assert rate.limit is not None and rate.limit >= 50
    assert _asked(rate, 50, 61.0, 0.02) == 50


def test_a_limit_that_refuses_nothing_holds_just_below_the_bound() -> None:
    # a limit above what is asked refuses nothing: it does not grow towards a surge
    rate = JobRate(busy_limit=0.9, limit=40.0, busy=0.88, tokens=20.0)
    for t in range(1, 11):
        assert _asked(rate, 38, float(t - 1), 1.0 / 38) == 38
        rate.observe(0.88, 1.0, float(t))
    assert rate.limit == 40.0


def test_the_limit_never_goes_below_its_floor() -> None:
    rate = JobRate(busy_limit=0.85)
    _asked(rate, 50, 0.0, 0.02)
    for t in range(1, 60):
        _asked(rate, 100, float(t - 1), 0.01)
        rate.observe(1.0, 1.0, float(t))
    assert rate.limit == MIN_RATE


def test_a_second_in_which_few_jobs_are_asked_does_not_set_the_limit() -> None:
    # clients on the same busy machine fall behind for a second: 4 jobs asked of 50
    rate = _engaged()
    engaged = rate.limit
    assert engaged is not None
    _asked(rate, 4, 1.0, 0.2)
    rate.observe(0.95, 1.0, 2.0)
    assert rate.limit is not None and rate.limit >= engaged * (1 - MAX_CUT)
    assert rate.limit > 4


def test_the_limit_follows_few_jobs_asked_down_and_is_lifted_when_not_busy() -> None:
    rate = _engaged()
    for t in range(2, 2 + RECENT_READINGS):  # still busy, few jobs asked: down to them
        _asked(rate, 2, float(t - 1), 0.1)
        rate.observe(0.95, 1.0, float(t))
    assert rate.limit == MIN_RATE
    _asked(rate, 2, 10.0, 0.1)
    rate.observe(0.5, 1.0, 11.0)
    assert rate.limit is None


def test_engaging_after_a_second_of_few_admitted_starts_from_the_recent_most() -> None:
    rate = JobRate(busy_limit=0.85)
    _asked(rate, 50, 0.0, 0.02)
    rate.observe(0.80, 1.0, 1.0)  # not busy yet: 50 admitted
    _asked(rate, 12, 1.0, 0.08)
    rate.observe(0.99, 1.0, 2.0)  # busy, while the clients fell behind
    assert rate.limit is not None and rate.limit >= 50 * (1 - MAX_CUT)


def test_off_when_the_bound_is_zero_or_the_share_unknown() -> None:
    off = JobRate(busy_limit=0.0)
    _asked(off, 50, 0.0, 0.02)
    off.observe(1.0, 1.0, 1.0)
    assert off.limit is None
    unknown = _engaged()
    unknown.observe(None, 1.0, 2.0)
    assert unknown.limit is None


def _stat(path: Path, busy: int, idle: int, iowait: int) -> None:
    # cpu user nice system idle iowait irq softirq steal
    path.write_text(f"cpu  {busy} 0 0 {idle} {iowait} 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")


def test_busy_share_reads_every_core_between_two_readings(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    _stat(stat, busy=1000, idle=5000, iowait=100)
    share = BusyShare(stat)
    _stat(stat, busy=1300, idle=5080, iowait=120)  # 300 busy, 100 free
    assert share.read() == pytest.approx(0.75)
    assert share.read() is None  # no tick since


@pytest.mark.parametrize("text", ["", "intr 1 2 3\n", "cpu 1 2\n", "cpu a b c d e f\n"])
def test_busy_share_is_unknown_without_a_readable_cpu_line(tmp_path: Path, text: str) -> None:
    stat = tmp_path / "stat"
    stat.write_text(text)
    assert BusyShare(stat).read() is None
    assert BusyShare(tmp_path / "missing").read() is None


async def test_a_new_job_past_the_limit_is_refused_with_retry_after(
    app: web.Application, aiohttp_client: Callable[..., Any]
) -> None:
    # the app's settings leave the busy share unread: this limit stays as it is set
    limited = app[JOB_RATE] = JobRate(busy_limit=0.85, limit=MIN_RATE)
    app[ADMISSION_METRICS] = AdmissionMetrics(app[ADMISSION], limited, app[METRICS])
    client: TestClient[Any, Any] = await aiohttp_client(app)
    limited.refilled = time.perf_counter()  # an empty bucket, refilling at MIN_RATE a second
    resp = await client.post("/interventions", json={})
    assert resp.status == 503
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    assert int(resp.headers["Retry-After"]) >= 1
    assert (await resp.json())["code"] == "overloaded"
    assert limited.refused == 1
    # only new jobs: the rest goes on (here to authentication, which wants a token)
    assert (await client.get(f"/interventions/{uuid.uuid4()}")).status == 401
    assert (await client.post(f"/interventions/{uuid.uuid4()}/status", json={})).status == 401
    assert (await client.get("/healthz")).status == 200
    await asyncio.sleep(1.2 / MIN_RATE)  # a token comes back
    assert (await client.post("/interventions", json={})).status == 401
    assert limited.refused == 1
    exposed = await (await client.get("/metrics")).text()  # what an operator sees
    assert 'zendo_admission_refused_total{reason="cpu_busy"} 1.0' in exposed
    assert f"zendo_new_job_rate_limit {MIN_RATE:.1f}" in exposed
