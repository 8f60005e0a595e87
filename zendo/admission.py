"""Admission control: when this process is behind, new work is refused at once with
503 `overloaded` and `Retry-After` (CONTRACT §8), rather than queued for seconds.

"Behind" is any of three signals, all cheap to read on every request:
- the HTTP requests this process is handling at once (each holds memory, maybe a
  PostgreSQL connection, and its answer waits behind the others' work);
- the event loop's lag, as the probe of `zendo/system/runtime.py` last measured it
  (a loop that runs a timer late runs every request late);
- the latency of the requests it has just answered. The two bounds above are far
  limits, reached only when things go badly wrong; on a machine whose CPU is simply
  full (two cores shared with PostgreSQL, Redis and the load generator) neither is
  reached, and requests slow down together instead. So there is also an adaptive limit
  on requests in flight, judged once a window has lasted `WINDOW_S` and seen
  `MIN_ANSWERS`: when its 90th-percentile answer (handling time plus the loop's lag) was
  slower than `LATENCY_TARGET_S` in two windows in a row (or `CLEARLY_LATE` times slower in
  one), the limit drops to `BACKOFF` times what was in flight at the window's peak; when
  answers were prompt and the limit in use, it grows by `GROWTH`. Past the limit new work
  is refused, and what is admitted keeps its latency. Two windows, not one: with the load
  generator, PostgreSQL and Redis on the same two cores, a process is descheduled for tens
  of milliseconds now and then, and a single late quarter-second is that, not overload;
  judged on one window, the limit sat at 8-20 requests for a process with 3 in flight on
  average, and bursts of ordinary traffic were shed while a quarter of the CPU was idle
  (README load test: 3-4 jobs/s of 50 refused). The 90th
  percentile, not the slowest answer, so that one GC pause or one slow query does not
  turn new jobs away; not the median, which on a saturated machine stayed at 25-30 ms
  while the clients saw p99s of 300 ms (their requests also wait for a CPU before this
  process reads them, which no in-process clock sees). Routes slow by design (a
  password hash takes a bcrypt, off the loop) do not feed it.
New jobs past those bounds meet one more (`zendo/headroom.py`): a rate limit while the
machine's cores are busy past a share, which bounds the work the admitted jobs bring
later, and refuses at an even pace rather than at the moments answers are late.
Health checks and metrics are always admitted. A WebSocket handshake is checked like a
request (a refused one gets the same 503 before the upgrade), but an open socket is
not counted in flight: it lives for hours and costs only when it sends.

Work in progress goes first: a request that moves an existing job along (an offer's
answer, a status change, a cancellation) is refused only past twice the far bounds, as an
operator's, never by the adaptive limit. Shed, it comes back after `Retry-After` with its
job stalled meanwhile, and its retries are more requests for a machine already full: at
1.2 times what a machine held (bench_capacity, 180 jobs/s asked, 12-05, five runs each way),
with work under way refused past twice the adaptive limit (never below 16 in flight),
4,500-10,000 status changes were shed and retried in a 35 s step, 123-156 jobs/s were
created, p99 330-640 ms, and the load generator's own loop ran 130-280 ms late (p99);
refused only at the far bounds, none were, 142-161 jobs/s were created, p99 330-450 ms, and
its loop ran 83-120 ms late. On a medium machine at twice
the README's rate the same change created 80-89 jobs/s against 77-83, with the p99 of the
admitted requests no better (220-580 ms against 230-310): neither holds 250 ms there, and
this way no job under way is stalled. What work under way can pile up is bounded by the
jobs admitted: with as much of it in flight as the adaptive limit, every new job is
refused, so the jobs under way drain.
An offer answered over a socket (gateway/ws.py, through the `WorkMeter` port) is never
refused, but counts in flight and in the windows like a request: when accepts slow down,
new jobs are turned away first.
Operators' requests (`/admin/...`) are refused only past twice the far bounds: a
handful a second at most, and an overloaded system is exactly when the ops team must
see it. WebSocket handshakes are not subject to the adaptive limit either: the gateway
bounds the sockets still waiting for their `hello` (gateway/arrivals.py).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from core.errors import Overloaded
from core.metrics import Metrics
from zendo.headroom import JobRate

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Requests handled at once by one process before new ones are refused: at the few
# milliseconds of CPU a request costs here, more would only queue.
MAX_IN_FLIGHT = 512
# Event-loop lag past which new work is refused (the probe fires every 25 ms).
MAX_LOOP_LAG_S = 0.5
RETRY_AFTER_S = 1
OVERLOADED_DETAIL = "This server is busy; retry shortly"
# The adaptive limit: a window whose 90th-percentile answer (handling time + loop lag) is
# slower than this means the process is taking on more than it can answer promptly. About
# a quarter of the contract's 250 ms leaves room for the time a request waits before the
# loop reads it (and for a client's own p99, about twice its p90).
LATENCY_TARGET_S = 0.06
WINDOW_S = 0.25
BACKOFF = 0.8
GROWTH = 1.1
MIN_LIMIT = 4.0
# A window is judged on at least this many answers (at low traffic, it lasts longer).
MIN_ANSWERS = 20
JUDGED_QUANTILE = 0.9  # the answer a window is judged by (module docstring)
# One late window lowers the limit only when it is this many times past the target;
# otherwise it takes two in a row (module docstring).
CLEARLY_LATE = 2.0
ALWAYS_ADMITTED = frozenset({"/healthz", "/readyz", "/metrics"})
SLOW_BY_DESIGN = frozenset({"/auth/login", "/auth/register"})
WEBSOCKET_PATH = "/ws"
# Work in progress is refused only past this multiple of the far bounds.
PROGRESS_SLACK = 2.0
PROGRESS_SUFFIXES = ("/status", "/cancel", "/accept", "/decline")
_OPERATOR_PREFIX = "/admin/"


def in_progress(request: web.Request) -> bool:
    """A request that moves an existing job along (POST .../status, .../cancel, and an
    offer's accept or decline)."""
    return request.method == "POST" and request.path.endswith(PROGRESS_SUFFIXES)


def operator(request: web.Request) -> bool:
    return request.path.startswith(_OPERATOR_PREFIX)


@dataclass(slots=True)
class Admission:
    max_in_flight: int = MAX_IN_FLIGHT
    max_loop_lag_s: float = MAX_LOOP_LAG_S
    latency_target_s: float = LATENCY_TARGET_S
    in_flight: int = 0
    loop_lag_s: float = 0.0  # the lag probe's last reading
    refused: int = 0
    refused_by_lag: int = 0  # of `refused`: the loop's lag was past its bound
    # The adaptive limit on requests in flight when new work arrives, and its window.
    limit: float = 0.0  # starts at max_in_flight
    window_started: float = 0.0
    window_peak: int = 0
    window_answers: list[float] = field(default_factory=list)
    late_before: bool = False  # the last judged window was late
    # Connections whose next request the door admitted (zendo/system/request_screen.py):
    # in flight from that moment, before aiohttp's two loop turns bring it here.
    held: set[object] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.limit = float(self.max_in_flight)

    def refuses(self, *, in_progress: bool = False, adaptive: bool = True) -> bool:
        """True, counted as a refusal, when the request must be refused. `in_progress`:
        the far bounds only, doubled (refusing it delays a job under way; operators too);
        `adaptive=False`: the far bounds only (handshakes)."""
        refuse, lagging = self.judge(in_progress=in_progress, adaptive=adaptive)
        if refuse:
            self.count_refusal(lagging=lagging)
        return refuse

    def judge(self, *, in_progress: bool = False, adaptive: bool = True) -> tuple[bool, bool]:
        """`refuses`'s verdict, not counted: (refuse, because the loop lags)."""
        limit = min(self.limit, self.max_in_flight) if adaptive else self.max_in_flight
        max_lag = self.max_loop_lag_s
        if in_progress:
            limit = self.max_in_flight * PROGRESS_SLACK
            max_lag = max_lag * PROGRESS_SLACK
        lagging = self.loop_lag_s > max_lag
        return lagging or self.in_flight >= limit, lagging

    def count_refusal(self, *, lagging: bool) -> None:
        self.refused += 1
        self.refused_by_lag += lagging

    def check(self, *, in_progress: bool = False, adaptive: bool = True) -> None:
        """Raises Overloaded when the request must be refused (`refuses`)."""
        if self.refuses(in_progress=in_progress, adaptive=adaptive):
            raise Overloaded(OVERLOADED_DETAIL, retry_after_s=RETRY_AFTER_S)

    def admitted(self) -> None:
        self.in_flight += 1
        self.window_peak = max(self.window_peak, self.in_flight)

    def hold(self, connection: object) -> bool:
        """The door admitted `connection`'s request: in flight from now. True the first
        time; False when the door read that connection again before the request reached
        the middleware (counted once)."""
        if connection in self.held:
            return False
        self.held.add(connection)
        self.admitted()
        return True

    def claim(self, connection: object) -> bool:
        """A request of `connection` reaches the middleware: True if the door admitted
        it already (counted in flight: nothing more to judge or count)."""
        if connection in self.held:
            self.held.remove(connection)
            return True
        return False

    def release(self, connection: object) -> None:
        """`connection` ended: a request the door admitted and no handler met leaves."""
        if connection in self.held:
            self.held.remove(connection)
            self.in_flight -= 1

    def answered(self, handling_s: float, now: float) -> None:
        """One admitted request is answered; judges the window once it is over."""
        self.in_flight -= 1
        self.window_answers.append(handling_s + self.loop_lag_s)
        if now - self.window_started < WINDOW_S or len(self.window_answers) < MIN_ANSWERS:
            return
        answers = sorted(self.window_answers)
        judged = answers[int(JUDGED_QUANTILE * (len(answers) - 1))]
        late = judged > self.latency_target_s
        if late and (self.late_before or judged > CLEARLY_LATE * self.latency_target_s):
            self.limit = max(MIN_LIMIT, min(self.limit, self.window_peak) * BACKOFF)
        elif not late and self.window_peak * 2 >= self.limit:  # grows only while in use
            self.limit = min(float(self.max_in_flight), self.limit * GROWTH)
        self.late_before = late
        self.window_started = now
        self.window_peak = self.in_flight
        self.window_answers.clear()


ADMISSION = web.AppKey("admission", Admission)
JOB_RATE = web.AppKey("job_rate", JobRate)
NEW_JOB_PATH = "/interventions"


class AdmissionMetrics:
    """`/metrics`: the adaptive limit, the requests in flight and the refusals by reason,
    copied from an `Admission` by `sync` (the loop-lag probe calls it every tick, and
    `/metrics` before it answers): nothing on the request path, and in a worker pool
    each process's figures reach the files the pool's `/metrics` adds up."""

    def __init__(self, admission: Admission, job_rate: JobRate, metrics: Metrics) -> None:
        self._admission = admission
        self._job_rate = job_rate
        self._job_rate_limit = metrics.new_job_rate_limit
        self._by_cpu_busy = metrics.admission_refused.labels(reason="cpu_busy")
        self._counted_cpu_busy = 0
        self._limit = metrics.admission_limit
        self._in_flight = metrics.admission_in_flight
        self._by_in_flight = metrics.admission_refused.labels(reason="in_flight")
        self._by_lag = metrics.admission_refused.labels(reason="loop_lag")
        self._counted_in_flight = 0
        self._counted_lag = 0

    def sync(self) -> None:
        admission = self._admission
        self._limit.set(min(admission.limit, admission.max_in_flight))
        self._in_flight.set(admission.in_flight)
        by_lag = admission.refused_by_lag
        by_in_flight = admission.refused - by_lag
        if by_in_flight != self._counted_in_flight:
            self._by_in_flight.inc(by_in_flight - self._counted_in_flight)
            self._counted_in_flight = by_in_flight
        if by_lag != self._counted_lag:
            self._by_lag.inc(by_lag - self._counted_lag)
            self._counted_lag = by_lag
        job_rate = self._job_rate
        self._job_rate_limit.set(job_rate.limit or 0.0)
        if job_rate.refused != self._counted_cpu_busy:
            self._by_cpu_busy.inc(job_rate.refused - self._counted_cpu_busy)
            self._counted_cpu_busy = job_rate.refused


ADMISSION_METRICS = web.AppKey("admission_metrics", AdmissionMetrics)


def _admit(request: web.Request, admission: Admission) -> None:
    """Judge `request` (module docstring); admitted, it counts in flight, else Overloaded."""
    if operator(request):
        admission.check(in_progress=True, adaptive=False)
    else:
        admission.check(in_progress=in_progress(request))
        if (
            request.method == "POST"
            and request.path == NEW_JOB_PATH
            and not request.app[JOB_RATE].take(time.perf_counter())
        ):
            raise Overloaded(OVERLOADED_DETAIL, retry_after_s=RETRY_AFTER_S)
    admission.admitted()


@web.middleware
async def admission_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in ALWAYS_ADMITTED or request.method == "OPTIONS":
        return await handler(request)
    admission = request.app[ADMISSION]
    # A request the door admitted (zendo/system/request_screen.py) is in flight already,
    # its new job's token taken.
    if not admission.claim(request.protocol):
        if request.path == WEBSOCKET_PATH:
            # Handshakes have their own bound (gateway/arrivals.py: sockets awaiting hello).
            admission.check(adaptive=False)
            return await handler(request)
        _admit(request, admission)
    started = time.perf_counter()
    try:
        return await handler(request)
    finally:
        ended = time.perf_counter()
        # Routes slow by design answer late without the process being behind.
        admission.answered(0.0 if request.path in SLOW_BY_DESIGN else ended - started, ended)
