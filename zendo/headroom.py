"""CPU headroom: a rate limit on new jobs while the machine's cores are nearly all busy.

Admission control (`zendo/admission.py`) bounds the requests in flight and refuses new
jobs when answers come late. That bounds what waits inside this process, not the work
the jobs it admits bring later (an accept, four status changes, their pushes), which is
never refused; and on a machine whose cores are shared with PostgreSQL, Redis and
whatever else runs there, a full CPU delays everyone before any answer here is late:
past capacity, the cores stayed 96 % busy and every process waited for one.

So the jobs admitted are also bounded by the machine's busy share (`/proc/stat`: every
core, every process; idle and I/O wait count as free). Once a second: when the share,
smoothed, is past `busy_limit` while this process is admitting at least `ENGAGE_RATE`
new jobs a second, new jobs are limited to the most it admitted in a second of the last
`RECENT_READINGS` (or, once limited, the most it was asked, if less), less `GAIN` times
the relative excess; while the share is below the bound the limit grows by `GAIN` times
the relative shortfall (when it refused jobs in that second, or the share stays `HYSTERESIS`
below the bound), and it is lifted once the jobs asked fall well below it. A limit that
refuses jobs grows back even a little below the bound, so that it settles where the
machine is `busy_limit` busy: with a dead band there, a machine that runs just below the
bound (a slow one under the README's load, 83-88 % busy) saw each second past the bound
cut the limit and none restore it. Past the limit a new job is answered 503 `overloaded`
with `Retry-After` (a token bucket of `BURST_S` of the limit: steady arrivals, not a
second's worth at once), at the door when it can be (`zendo/system/request_screen.py`).
Every process of a pool runs its own, on the same machine-wide share, so each sheds its
part. Refused at an even pace, new jobs are refused whether or not answers are late at
that moment: the latency rule's refusals come when everything is slow, and the client
sees them late.

The work a job brings arrives over the next seconds (offers answered within one to a
few seconds, status changes after that): the gain is small and the reading smoothed, so
that the limit does not swing past what the machine holds while that work arrives.
Clients on the same machine (a load generator) pay for each refusal and its retry out of
the same cores: there the limit sheds more than it would with remote clients, and when
something else takes the cores it can fall well below what the machine held. On a 2-core
VM the share hardly moves between half and all of what the machine holds (a process with
less to do wakes more often a job; refusals and their retries fill the rest), so there
the limit settles anywhere in that range (BENCHMARKS.md, twice the rate).
`ZENDO_CPU_BUSY_LIMIT=0` turns it off.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

# Seconds between two readings of the machine's busy share.
PERIOD_S: Final = 1.0
# Weight of the newest reading in the smoothed share.
SMOOTHING: Final = 0.5
# A process admitting fewer new jobs a second than this is not limited (a few jobs cannot
# fill a machine; a busy machine is something else's doing).
ENGAGE_RATE: Final = 10.0
# The limit never goes below this many new jobs a second per process.
MIN_RATE: Final = 5.0
# Per reading past the bound, the limit drops by GAIN x (share - bound) / bound (at most
# by MAX_CUT); per reading HYSTERESIS below it, it grows by GAIN x (bound - share) / bound
# (at most by MAX_GROWTH).
GAIN: Final = 0.5
MAX_CUT: Final = 0.3
MAX_GROWTH: Final = 0.2
HYSTERESIS: Final = 0.05
# The limit is set from the most jobs admitted (or asked) in a second of this many readings,
# not the last one's: clients on the same machine fall behind for a second when its cores
# are full (while 10,000 sockets connect, for one), and one such second (4 jobs asked of
# 50) set the limit to its floor (BENCHMARKS.md, twice the rate).
RECENT_READINGS: Final = 5
# The limit is lifted when the jobs asked stay below this share of it.
LIFT_BELOW: Final = 0.5
# The token bucket holds this many seconds of the limit.
BURST_S: Final = 0.5

_PROC_STAT = Path("/proc/stat")


class BusyShare:
    """The machine's busy share of every core between two `read`s (`/proc/stat`)."""

    def __init__(self, path: Path = _PROC_STAT) -> None:
        self._path = path
        self._last: tuple[int, int] | None = self._totals()

    def _totals(self) -> tuple[int, int] | None:
        try:
            with self._path.open("rb") as f:
                fields = f.readline().split()
        except OSError:
            return None
        if len(fields) < 6 or fields[0] != b"cpu":
            return None
        try:
            ticks = [int(x) for x in fields[1:9]]  # user ... steal (guest is in user)
        except ValueError:
            return None
        free = ticks[3] + ticks[4]  # idle, iowait
        return sum(ticks), free

    def read(self) -> float | None:
        """The busy share since the last call, or None where `/proc/stat` is not there."""
        now = self._totals()
        last, self._last = self._last, now
        if now is None or last is None or now[0] <= last[0]:
            return None
        total = now[0] - last[0]
        return 1.0 - (now[1] - last[1]) / total


@dataclass(slots=True)
class JobRate:
    """The new-job rate limit of one process (module docstring). `busy_limit` 0: off."""

    busy_limit: float
    limit: float | None = None  # new jobs a second; None: not limited
    busy: float | None = None  # the smoothed share
    asked: int = 0  # new jobs seen since the last reading
    admitted: int = 0  # of those, let through
    refused: int = 0
    refused_seen: int = 0  # `refused` at the last reading
    tokens: float = 0.0
    refilled: float = 0.0
    # (asked, admitted) a second in the last RECENT_READINGS readings
    recent: deque[tuple[float, float]] = field(
        default_factory=lambda: deque(maxlen=RECENT_READINGS)
    )

    def full(self, now: float) -> bool:
        """True when a new job arriving `now` must be refused (nothing counted)."""
        limit = self.limit
        if limit is None:
            return False
        self.tokens = min(max(1.0, limit * BURST_S), self.tokens + (now - self.refilled) * limit)
        self.refilled = now
        return self.tokens < 1.0

    def take(self, now: float) -> bool:
        """A new job arrives: True if it may go on, False if it must be refused (counted)."""
        if self.full(now):
            self.count_refusal()
            return False
        self.asked += 1
        self.admitted += 1
        if self.limit is not None:
            self.tokens -= 1.0
        return True

    def count_refusal(self) -> None:
        """A new job refused (by `take`, or where `full` said so)."""
        self.asked += 1
        self.refused += 1

    def observe(self, share: float | None, elapsed_s: float, now: float) -> None:
        """One reading of the machine's busy share over the last `elapsed_s` seconds."""
        asked_rate = self.asked / elapsed_s
        admitted_rate = self.admitted / elapsed_s
        self.asked = self.admitted = 0
        binding = self.refused != self.refused_seen  # the limit refused jobs since
        self.refused_seen = self.refused
        self.recent.append((asked_rate, admitted_rate))
        if share is None or self.busy_limit <= 0.0:
            self.limit = None
            return
        busy = share if self.busy is None else SMOOTHING * share + (1 - SMOOTHING) * self.busy
        self.busy = busy
        limit = self.limit
        error = (busy - self.busy_limit) / self.busy_limit
        if error > 0.0:
            if limit is None and admitted_rate < ENGAGE_RATE:
                return
            if limit is None:
                base = max(admitted for _, admitted in self.recent)
                self.tokens = base * BURST_S
                self.refilled = now
            else:
                base = min(limit, max(max(asked for asked, _ in self.recent), MIN_RATE))
            self.limit = max(MIN_RATE, base * (1.0 - min(MAX_CUT, GAIN * error)))
        elif limit is not None:
            if asked_rate < LIFT_BELOW * limit:
                self.limit = None
            elif binding or busy < self.busy_limit - HYSTERESIS:
                self.limit = limit * (1.0 + min(MAX_GROWTH, -GAIN * error))
