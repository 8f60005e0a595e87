"""Admission control: when this process is behind, new work is refused at once with
503 `overloaded` and `Retry-After` (CONTRACT §8), rather than queued for seconds.

"Behind" is either of two signals, both cheap to read on every request:
- the HTTP requests this process is handling at once (each holds memory, maybe a
  PostgreSQL connection, and its answer waits behind the others' work);
- the event loop's lag, as the probe of `zendo/system/runtime.py` last measured it
  (a loop that runs a timer late runs every request late).
Health checks and metrics are always admitted. A WebSocket handshake is checked like a
request (a refused one gets the same 503 before the upgrade), but an open socket is
not counted in flight: it lives for hours and costs only when it sends.

Work in progress goes first: a request that moves an existing job along (an offer's
answer, a status change, a cancellation) is refused only past twice the bounds, so
that shedding turns new jobs away rather than stranding the ones under way (a refused
status change leaves its artisan BUSY and its client waiting).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from core.errors import Overloaded

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Requests handled at once by one process before new ones are refused: at the few
# milliseconds of CPU a request costs here, more would only queue.
MAX_IN_FLIGHT = 512
# Event-loop lag past which new work is refused (the probe fires every 25 ms).
MAX_LOOP_LAG_S = 0.5
RETRY_AFTER_S = 1
ALWAYS_ADMITTED = frozenset({"/healthz", "/readyz", "/metrics"})
WEBSOCKET_PATH = "/ws"
# Work in progress is refused only past this multiple of the bounds.
PROGRESS_SLACK = 2.0
_PROGRESS_SUFFIXES = ("/status", "/cancel", "/accept", "/decline")


def in_progress(request: web.Request) -> bool:
    """A request that moves an existing job along (POST .../status, .../cancel, and an
    offer's accept or decline)."""
    return request.method == "POST" and request.path.endswith(_PROGRESS_SUFFIXES)


@dataclass(slots=True)
class Admission:
    max_in_flight: int = MAX_IN_FLIGHT
    max_loop_lag_s: float = MAX_LOOP_LAG_S
    in_flight: int = 0
    loop_lag_s: float = 0.0  # the lag probe's last reading
    refused: int = 0

    def check(self, *, in_progress: bool = False) -> None:
        slack = PROGRESS_SLACK if in_progress else 1.0
        if (
            self.in_flight >= self.max_in_flight * slack
            or self.loop_lag_s > self.max_loop_lag_s * slack
        ):
            self.refused += 1
            raise Overloaded("This server is busy; retry shortly", retry_after_s=RETRY_AFTER_S)


ADMISSION = web.AppKey("admission", Admission)


@web.middleware
async def admission_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in ALWAYS_ADMITTED or request.method == "OPTIONS":
        return await handler(request)
    admission = request.app[ADMISSION]
    admission.check(in_progress=in_progress(request))
    if request.path == WEBSOCKET_PATH:
        return await handler(request)
    admission.in_flight += 1
    try:
        return await handler(request)
    finally:
        admission.in_flight -= 1
