"""One clock for every artisan's location fixes in the locust process.

Each artisan sends a fix every period, at a random phase of its own. Sleeping 10,000
greenlets for 4 s each costs gevent a timer, a switch into its hub and one back for every
fix (2,500 a second): gevent's sleep and its hub were a fifth of locust's samples at
twice the README's rate (py-spy), CPU its server shares, and these timers most of it.
Here the period is cut into ticks, each artisan takes a random tick, and one greenlet
wakes once a tick and calls the fixes due then. What goes on the wire is the same: each
artisan's own frame on its own socket, once a period, at its own phase (to the tick).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import gevent

# A phase to the nearest 5 ms of a 4 s period: 800 ticks, ~12 fixes a tick at 10,000
# artisans, each socket still sending once a period.
TICK_S = 0.005


class FixClock:
    """Calls each registered callback once every ``period_s``, at a random tick."""

    def __init__(self, period_s: float, tick_s: float = TICK_S) -> None:
        self.tick_s = tick_s
        self.ticks: list[list[Callable[[], None]]] = [
            [] for _ in range(max(1, round(period_s / tick_s)))
        ]
        self.tick_of: dict[Callable[[], None], list[Callable[[], None]]] = {}
        self.runner: gevent.Greenlet | None = None

    def add(self, fix: Callable[[], None]) -> None:
        """``fix`` from the next time its random tick comes round."""
        tick = self.tick_of[fix] = random.choice(self.ticks)
        tick.append(fix)
        if self.runner is None:
            self.runner = gevent.spawn(self._run)

    def remove(self, fix: Callable[[], None]) -> None:
        tick = self.tick_of.pop(fix, None)
        if tick is not None:
            tick.remove(fix)

    def _run(self) -> None:
        """Tick by tick on an absolute schedule: a tick that comes late (the process was
        busy) is run late, not skipped, and the ticks after it keep their times."""
        started = time.perf_counter()
        done = 0
        count = len(self.ticks)
        while True:
            due = int((time.perf_counter() - started) / self.tick_s)
            while done <= due:
                for fix in tuple(self.ticks[done % count]):  # a fix may remove itself
                    fix()
                done += 1
            gevent.sleep(max(0.0, started + done * self.tick_s - time.perf_counter()))
