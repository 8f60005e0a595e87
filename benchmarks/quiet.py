"""The machine's busy cores (`/proc/stat`), and a wait for the work of a finished phase
to drain before the speed reference is taken.

The speed reference (the bare aiohttp loop flat out) is what every figure is read
against, so it must measure the machine, not the machine plus the tail of the phase
before it: right after 4,000-10,000 sockets close, the server is still tearing them
down, and a reference taken at once read 11-60 % low (bench_cost, 12-07), which made
every figure of that run look better than it was.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from zendo.headroom import BusyShare

_PROC_STAT: Final = Path("/proc/stat")
#: below this many busy cores (all processes) the machine is quiet enough to measure:
#: an idle server, PostgreSQL and Redis together use a few hundredths of a core
QUIET_CORES: Final = 0.25
#: each reading covers this long
WINDOW_S: Final = 0.5
#: and the wait gives up after this long (then the reference says how busy it was)
MAX_WAIT_S: Final = 30.0


def machine_cpu(path: Path = _PROC_STAT) -> tuple[float, float]:
    """(all, idle) CPU seconds of the machine so far, every core (`/proc/stat`; idle
    and I/O wait count as idle)."""
    fields = [float(x) for x in path.read_text().split("\n", 1)[0].split()[1:8]]
    tick = os.sysconf("SC_CLK_TCK")
    return sum(fields) / tick, (fields[3] + fields[4]) / tick


@dataclass(frozen=True)
class Quiet:
    """How the wait ended: the busy cores of its last window, and how long it took."""

    busy_cores: float
    waited_s: float

    @property
    def reached(self) -> bool:
        return self.busy_cores <= QUIET_CORES

    def note(self) -> str:
        """A line for the report when the machine never went quiet ('' when it did)."""
        if self.reached:
            return ""
        return (
            f"(the machine stayed {self.busy_cores:.2f} cores busy for {self.waited_s:.0f} s "
            "before it: this speed reference reads low)"
        )


async def wait_quiet(
    *,
    busy_share: Callable[[], float | None] | None = None,
    cores: int | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    window_s: float = WINDOW_S,
    max_wait_s: float = MAX_WAIT_S,
) -> Quiet:
    """Return once a `window_s` window found at most QUIET_CORES busy cores, or after
    `max_wait_s` whatever the machine does. `busy_share` gives the busy share of every
    core since its last call (by default zendo's own reader, `zendo.headroom.BusyShare`;
    None: it cannot say, counted as quiet)."""
    read = busy_share if busy_share is not None else BusyShare().read
    n_cores = cores if cores is not None else os.cpu_count() or 1
    start = clock()
    while True:
        await sleep(window_s)
        share = read()
        busy = max(0.0, share * n_cores) if share is not None else 0.0
        waited = clock() - start
        if busy <= QUIET_CORES or waited >= max_wait_s:
            return Quiet(busy_cores=busy, waited_s=waited)


async def before_reference() -> Quiet:
    """`wait_quiet`, saying so on stdout when the machine never went quiet: what the
    speed reference's callers run first."""
    quiet = await wait_quiet()
    if not quiet.reached:
        print(f"speed reference: {quiet.note()}", flush=True)
    return quiet
