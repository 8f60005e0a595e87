"""The bare baselines' loads: pipelined GEOADD from Python (Redis) and the bare receive
loop flat out (the speed reference)."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from redis.asyncio import Redis

from benchmarks.cost.constants import FLUSH_LINGER_S
from benchmarks.cost.meter import Delta, Meter, measure
from benchmarks.cost.probes import bare_count
from benchmarks.quiet import before_reference


class GeoLoad:
    """One GEOADD per fix, pipelined per flush (rate x 20 ms commands every 20 ms), each
    member moving a little every time, as the server's own writes."""

    def __init__(self, redis_url: str, members: list[dict[str, Any]]) -> None:
        self.redis = Redis.from_url(redis_url)
        self.members = members
        self.keys = [f"bench:cost:geo:{m['specialty']}" for m in members]
        self.pos = [(m["lon"], m["lat"]) for m in members]
        self.next = 0  # the member the next command moves

    async def place_all(self) -> None:
        """Every member in its key once (not measured: the server's are there already)."""
        await self.run(rate=len(self.members) / FLUSH_LINGER_S, seconds=FLUSH_LINGER_S)

    async def run(self, rate: float, seconds: float) -> int:
        """`rate` commands a second for `seconds`; the number sent."""
        n, sent = len(self.members), 0
        per_tick = rate * FLUSH_LINGER_S
        started = time.monotonic()
        for k in range(max(1, int(seconds / FLUSH_LINGER_S))):
            delay = started + k * FLUSH_LINGER_S - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            pipe = self.redis.pipeline(transaction=False)
            for _ in range(int(k * per_tick), int((k + 1) * per_tick)):
                i = self.next
                self.next = (i + 1) % n
                lon, lat = self.pos[i]
                lat += 0.00001
                self.pos[i] = (lon, lat)
                pipe.geoadd(self.keys[i], (lon, lat, self.members[i]["id"]))
                sent += 1
            await pipe.execute()
        return sent

    async def close(self) -> None:
        await self.redis.delete(*set(self.keys))
        await self.redis.aclose()


async def flat_out(
    args: argparse.Namespace, meter: Meter, workers: Any, port: int
) -> tuple[float, Delta]:
    """The bare loop flat out (the speed reference): frames received and the window,
    once the work of the phase before has drained (`benchmarks.quiet`)."""
    await before_reference()
    count0 = await bare_count(port)
    per_worker = min(args.flat_sockets, args.sockets) // args.workers
    _r, delta = await measure(
        meter, workers.call_all("flat", args.flat_s, per_worker), settle_s=0.3
    )
    return await bare_count(port) - count0, delta
