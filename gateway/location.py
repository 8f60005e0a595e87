"""The location pipeline: per-connection validation and rate limit, then batching.

Accepted fixes are collected in a dict (latest fix per artisan) and one flusher
task writes each batch with a single Redis pipeline (see LocationBatcher). The
flusher sends at most one batch per flush linger (20 ms) and keeps a bounded number
of flushes in flight, so a batch holds what arrived since the last one: under load
each Redis call, stream event and mirror read carries more fixes.

H3 resolution 8 (mean cell ≈ 0.74 km², edge ≈ 0.46 km): fine enough to count
artisans per neighbourhood, coarse enough that a 15 km match radius is a grid disk
of k ≈ 20 (≈ 1,300 cells) rather than the ≈ 9,000 cells of res 9.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Container

import h3
from redis.asyncio import Redis

from core import redis_keys
from core.domain import EARTH_RADIUS_KM
from core.redispool import run_script
from gateway import live
from gateway.tasks import stop_tasks

log = logging.getLogger("zendo.gateway")

H3_RESOLUTION = 8
MAX_CLOCK_SKEW_MS = 5 * 60 * 1000
MAX_SPEED_M_S = 70.0
EARTH_RADIUS_M = EARTH_RADIUS_KM * 1000.0
METRES_PER_DEGREE = math.pi * EARTH_RADIUS_M / 180.0

OUT_OF_RANGE = "out_of_range"
CLOCK_SKEW = "clock_skew"
OUT_OF_ORDER = "out_of_order"
TOO_FAST = "too_fast"
RATE_LIMITED = "rate_limited"
REASONS = (OUT_OF_RANGE, CLOCK_SKEW, OUT_OF_ORDER, TOO_FAST, RATE_LIMITED)


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


class FixValidator:
    """Per-connection checks, in order: token bucket, range, clock skew, order, speed.

    Seeded with the artisan's last stored fix, so order and speed also hold across
    reconnections.
    """

    __slots__ = ("age_ms", "capacity", "last", "move_m", "rate", "ref", "stamp", "tokens")

    def __init__(
        self,
        rate_per_s: float,
        last: tuple[float, float, int] | None = None,
        *,
        move_m: float = 25.0,
        age_s: float = 60.0,
    ) -> None:
        self.rate = rate_per_s
        self.capacity = max(1.0, rate_per_s)
        self.tokens = self.capacity
        self.stamp = time.monotonic()
        self.last = last
        # The write-behind's rule (gateway/repo.py), from the last fix that `moved`:
        self.move_m = move_m
        self.age_ms = age_s * 1000.0
        self.ref: tuple[float, float, int] | None = None

    def _take_token(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    def check(self, lat: float, lon: float, ts: int, now_ms: int) -> str | None:
        """None if the fix is accepted (and becomes the last fix), else the reason."""
        if not self._take_token():
            return RATE_LIMITED
        if not (
            math.isfinite(lat)
            and math.isfinite(lon)
            and -90.0 <= lat <= 90.0
            and -180.0 <= lon <= 180.0
        ):
            return OUT_OF_RANGE
        if abs(ts - now_ms) > MAX_CLOCK_SKEW_MS:
            return CLOCK_SKEW
        last = self.last
        if last is not None:
            last_lat, last_lon, last_ts = last
            if ts < last_ts:
                return OUT_OF_ORDER
            distance = haversine_m(last_lat, last_lon, lat, lon)
            elapsed_s = (ts - last_ts) / 1000.0
            if distance > 0.0 and (elapsed_s <= 0.0 or distance / elapsed_s > MAX_SPEED_M_S):
                return TOO_FAST
        self.last = (lat, lon, ts)
        return None

    def moved(self, lat: float, lon: float, ts: int) -> bool:
        """Whether an accepted fix is one PostgreSQL's copy would take: the first of this
        socket, or over `move_m` metres or `age_s` from the last such fix (which it then
        becomes). Only those become stream rows and move the GEO set (gateway/lua.py);
        the parsed floats are here already, which the fix script would have to parse."""
        ref = self.ref
        if ref is not None and ts - ref[2] < self.age_ms:
            dy = (lat - ref[0]) * METRES_PER_DEGREE
            dx = (lon - ref[1]) * METRES_PER_DEGREE * math.cos(math.radians(ref[0]))
            if dx * dx + dy * dy <= self.move_m * self.move_m:
                return False
        self.ref = (lat, lon, ts)
        return True


# (lat, lon, ts, heading) of an accepted fix, keyed by artisan id in the batch.
Fix = tuple[float, float, int, float | None]
TrackedFix = list[str]
OnTracked = Callable[[list[TrackedFix]], Awaitable[None]]
OnAccepted = Callable[[int], None]


def _pack(batch: list[tuple[str, Fix]], moved: Container[str]) -> str:
    """Rows "id|lat|lon|ts|cell|heading|moved\n" for APPLY_FIXES (repr: exact round
    trip; moved '1' or '0')."""
    cell = h3.latlng_to_cell
    return "".join(
        [
            f"{aid}|{lat!r}|{lon!r}|{ts}|{cell(lat, lon, H3_RESOLUTION)}|"
            f"{'' if heading is None else repr(heading)}|{'1' if aid in moved else '0'}\n"
            for aid, (lat, lon, ts, heading) in batch
        ]
    )


class LocationBatcher:
    """Collects accepted fixes (latest per artisan) and writes them in batches.

    The flusher wakes on the first fix of a batch, takes everything pending, and sends
    it as one pipeline of APPLY_FIXES calls of at most `chunk` fixes each (so neither
    the packing here nor one script in Redis runs long). Up to `max_inflight` flushes
    overlap, so fixes are packed while Redis applies the previous batch; order across
    overlapping flushes does not matter (the script keeps the newest `ts`). Per-fix
    Python work is a dict store on receipt, then one f-string and one H3 call here.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        chunk: int,
        on_tracked: OnTracked,
        on_accepted: OnAccepted | None = None,
        max_inflight: int = 2,
        linger_s: float = 0.0,
    ) -> None:
        self.redis = redis
        self.linger_s = linger_s
        self._last_flush = float("-inf")
        self.chunk = chunk
        self.on_tracked = on_tracked
        # Accepted fixes are counted here and reported once per batch (a Prometheus
        # Counter.inc per fix costs more than everything else `add` does).
        self.on_accepted = on_accepted
        self.accepted = 0
        self.pending: dict[str, Fix] = {}
        # Artisans with a pending fix that moved (FixValidator.moved): a newer fix that did
        # not replaces it in `pending` but keeps the flag, so the move is not lost.
        self.pending_moved: set[str] = set()
        self.wakeup = asyncio.Event()
        self.slots = asyncio.Semaphore(max_inflight)
        self.inflight: set[asyncio.Task[None]] = set()
        self.batches = 0
        self.flushed = 0
        self.failures = 0
        self.head = [
            *live.common_args(),
            redis_keys.LIVE_ARTISAN_PREFIX,
            redis_keys.TRACKING_PREFIX,
        ]

    def add(self, artisan_id: str, fix: Fix, moved: bool = True) -> None:
        pending = self.pending
        if not pending:
            self.wakeup.set()
        pending[artisan_id] = fix
        if moved:
            self.pending_moved.add(artisan_id)
        self.accepted += 1

    async def run(self) -> None:
        """The flusher loop; a failed batch is put back (newer fixes win) and retried."""
        try:
            while True:
                await self.wakeup.wait()
                await self.slots.acquire()
                # At most one flush per linger: a fix waits at most that long, and under
                # load each Redis call, stream event and mirror read carries more fixes.
                wait = self._last_flush + self.linger_s - asyncio.get_running_loop().time()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._last_flush = asyncio.get_running_loop().time()
                self.wakeup.clear()
                batch, self.pending = self.pending, {}
                moved, self.pending_moved = self.pending_moved, set()
                if self.accepted and self.on_accepted is not None:
                    self.on_accepted(self.accepted)
                    self.accepted = 0
                if not batch:
                    self.slots.release()
                    continue
                task = asyncio.get_running_loop().create_task(self._flush_task(batch, moved))
                self.inflight.add(task)
                task.add_done_callback(self.inflight.discard)
        finally:
            await stop_tasks(*self.inflight)

    async def _flush_task(self, batch: dict[str, Fix], moved: set[str]) -> None:
        try:
            await self.flush(batch, moved)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failures += 1
            backoff = min(2.0, 0.05 * 2 ** min(self.failures, 6))
            log.warning("location flush failed (%s); retrying in %.2fs", exc, backoff)
            for artisan_id, fix in batch.items():
                self.pending.setdefault(artisan_id, fix)  # a newer pending fix wins
            self.pending_moved |= moved
            await asyncio.sleep(backoff)
            self.wakeup.set()
        else:
            self.failures = 0
        finally:
            self.slots.release()

    async def flush(self, batch: dict[str, Fix], moved: Container[str] | None = None) -> None:
        """Write `batch`; `moved`: the artisans whose fix moved (None: all of them)."""
        items = list(batch.items())
        flagged: Container[str] = batch if moved is None else moved
        packed = [
            _pack(items[i : i + self.chunk], flagged) for i in range(0, len(items), self.chunk)
        ]
        # Packed in C and read without redis-py's per-command path (`run_script`): a
        # flush goes out 50 times a second per process under load. A NOSCRIPT (Redis
        # restarted) loads the script and sends the calls again: each failed whole.
        script = live.APPLY_FIXES.registered(self.redis)
        replies = await run_script(
            self.redis, script, [((), [*self.head, rows]) for rows in packed]
        )
        tracked: list[TrackedFix] = [entry for reply in replies for entry in reply]
        self.batches += 1
        self.flushed += len(items)
        if tracked:
            await self.on_tracked(tracked)
