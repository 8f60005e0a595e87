"""Event-loop health: how late the loop runs, how long the GC stops it, and who stalls it.

- `zendo_event_loop_lag_seconds`: a task asks to wake every `_LAG_PROBE_S` and records
  how late it woke. Any callback that holds the loop shows up here, whatever it is.
- `zendo_gc_pause_seconds{generation}`: every collection, timed by a `gc.callbacks`
  hook. Full collections grow with the number of live objects (thousands of sockets).
- `ZENDO_STALL_TRACE_MS` > 0 (off by default): a watchdog thread logs the loop thread's
  Python stack when the loop has not come back for that long. It names the code that
  holds the loop, which a sampling profiler averages away. Costs one thread waking every
  few ms, so it is a diagnostic switch, not a default.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import time
import traceback
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from core import appkeys
from core.appkeys import METRICS
from zendo.admission import ADMISSION, ADMISSION_METRICS, JOB_RATE
from zendo.headroom import PERIOD_S, BusyShare

log = logging.getLogger("zendo.runtime")
_LAG_PROBE_S = 0.025


async def _probe_lag(app: web.Application) -> None:
    lag = app[METRICS].loop_lag_seconds
    admission = app[ADMISSION]
    admission_metrics = app[ADMISSION_METRICS]
    job_rate = app[JOB_RATE]
    busy = BusyShare() if app[appkeys.SETTINGS].cpu_busy_limit > 0 else None
    loop = asyncio.get_running_loop()
    read_at = loop.time()
    while True:
        planned = loop.time() + _LAG_PROBE_S
        await asyncio.sleep(_LAG_PROBE_S)
        late = max(0.0, loop.time() - planned)
        lag.observe(late)
        admission.loop_lag_s = late
        admission_metrics.sync()
        now = loop.time()
        if busy is not None and now - read_at >= PERIOD_S:
            job_rate.observe(busy.read(), now - read_at, time.perf_counter())
            read_at = now


def _gc_timer(app: web.Application, log_above_s: float) -> Any:
    pause = app[METRICS].gc_pause_seconds
    by_generation = [pause.labels(generation=str(g)) for g in range(3)]
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        elapsed = time.perf_counter() - started[0]
        by_generation[info["generation"]].observe(elapsed)
        if log_above_s and elapsed >= log_above_s:
            log.warning(
                "gc generation %d took %.0f ms (collected %d; counts now %s)",
                info["generation"],
                elapsed * 1e3,
                info["collected"],
                gc.get_count(),
            )

    return on_gc


class StallTracer:
    """Logs the loop thread's stack once per stall longer than `threshold_s`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, threshold_s: float) -> None:
        self._loop = loop
        self._threshold_s = threshold_s
        self._beat = time.monotonic()
        self._loop_thread = threading.get_ident()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="zendo-stall-tracer", daemon=True)
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._tick()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._handle is not None:
            self._handle.cancel()
        self._thread.join(timeout=1.0)

    def _tick(self) -> None:
        self._beat = time.monotonic()
        self._handle = self._loop.call_later(self._threshold_s / 4, self._tick)

    def _watch(self) -> None:
        reported_beat = 0.0
        while not self._stop.wait(self._threshold_s / 4):
            beat = self._beat
            stalled_s = time.monotonic() - beat
            if stalled_s < self._threshold_s or beat == reported_beat:
                continue
            reported_beat = beat
            frame = sys._current_frames().get(self._loop_thread)
            stack = "".join(traceback.format_stack(frame)) if frame is not None else "?"
            log.warning("event loop stalled for %.0f ms so far in:\n%s", stalled_s * 1e3, stack)


async def runtime_ctx(app: web.Application) -> AsyncIterator[None]:
    lag_task = asyncio.create_task(_probe_lag(app), name="loop-lag-probe")
    trace_ms = app[appkeys.SETTINGS].stall_trace_ms
    on_gc = _gc_timer(app, trace_ms / 1e3)
    gc.callbacks.append(on_gc)
    tracer: StallTracer | None = None
    if trace_ms > 0:
        tracer = StallTracer(asyncio.get_running_loop(), trace_ms / 1e3)
        tracer.start()
    yield
    if tracer is not None:
        tracer.stop()
    gc.callbacks.remove(on_gc)
    lag_task.cancel()
    try:
        await lag_task
    except asyncio.CancelledError:
        pass
