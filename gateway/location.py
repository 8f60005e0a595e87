"""The location pipeline: per-connection validation and rate limit, then batching.

Accepted fixes are collected in a dict (latest fix per artisan) and one flusher
task writes each batch with a single Redis pipeline. The flusher wakes when the
first fix of a batch arrives, so a batch holds what arrived during one event-loop
iteration, plus whatever arrived while the previous flush was in flight.

H3 resolution 8 (mean cell ≈ 0.74 km², edge ≈ 0.46 km): fine enough to count
artisans per neighbourhood, coarse enough that a 15 km match radius is a grid disk
of k ≈ 20 (≈ 1,300 cells) rather than the ≈ 9,000 cells of res 9.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import h3
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from dispatch import redis_keys
from gateway import live

log = logging.getLogger("zendo.gateway")

H3_RESOLUTION = 8
MAX_CLOCK_SKEW_MS = 5 * 60 * 1000
MAX_SPEED_M_S = 70.0
EARTH_RADIUS_M = 6_371_008.8

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

    __slots__ = ("capacity", "last", "rate", "stamp", "tokens")

    def __init__(self, rate_per_s: float, last: tuple[float, float, int] | None = None) -> None:
        self.rate = rate_per_s
        self.capacity = max(1.0, rate_per_s)
        self.tokens = self.capacity
        self.stamp = time.monotonic()
        self.last = last

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


@dataclass(slots=True)
class Fix:
    artisan_id: str
    lat: float
    lon: float
    ts: int
    heading: float | None


TrackedFix = list[str]
OnTracked = Callable[[list[TrackedFix]], Awaitable[None]]


class LocationBatcher:
    """Collects accepted fixes and writes them in batches (one pipeline per batch)."""

    def __init__(self, redis: Redis, *, chunk: int, on_tracked: OnTracked) -> None:
        self.redis = redis
        self.chunk = chunk
        self.on_tracked = on_tracked
        self.pending: dict[str, Fix] = {}
        self.wakeup = asyncio.Event()
        self.batches = 0
        self.flushed = 0

    def add(self, fix: Fix) -> None:
        self.pending[fix.artisan_id] = fix
        self.wakeup.set()

    async def run(self) -> None:
        """The flusher loop; on a Redis error the batch is kept (newer fixes win) and retried."""
        backoff = 0.05
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            batch, self.pending = self.pending, {}
            if not batch:
                continue
            try:
                await self.flush(batch)
                backoff = 0.05
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("location flush failed (%s); retrying in %.2fs", exc, backoff)
                batch.update(self.pending)
                self.pending = batch
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                self.wakeup.set()

    async def flush(self, batch: dict[str, Fix]) -> None:
        fixes = list(batch.values())
        head = live.common_args()
        try:
            tracked = await self._execute(fixes, head)
        except NoScriptError:
            await self.redis.script_load(live.APPLY_FIXES.source)
            tracked = await self._execute(fixes, head)
        self.batches += 1
        self.flushed += len(fixes)
        if tracked:
            await self.on_tracked(tracked)

    async def _execute(self, fixes: list[Fix], head: list[Any]) -> list[TrackedFix]:
        pipe = self.redis.pipeline(transaction=False)
        for start in range(0, len(fixes), self.chunk):
            part = fixes[start : start + self.chunk]
            args: list[Any] = [*head, len(part)]
            for f in part:
                args += (
                    f.artisan_id,
                    repr(f.lat),
                    repr(f.lon),
                    f.ts,
                    h3.latlng_to_cell(f.lat, f.lon, H3_RESOLUTION),
                    "" if f.heading is None else repr(f.heading),
                    redis_keys.live_artisan(f.artisan_id),
                    redis_keys.tracking(f.artisan_id),
                )
            pipe.evalsha(live.APPLY_FIXES.sha, 0, *args)
        results = await pipe.execute()
        return [entry for result in results for entry in result]
