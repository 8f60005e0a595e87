"""The bare baselines: pipelined GEOADD (Redis), the bare receive loop and the bare
handlers."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis

from benchmarks.cost.clients import Helpers
from benchmarks.cost.constants import FLUSH_LINGER_S, SECRET
from benchmarks.cost.meter import Delta, Meter, idle, measure
from benchmarks.cost.phases import request_phase
from benchmarks.cost.probes import bare_count, wait_http
from benchmarks.cost.processes import start_module, stop_process
from benchmarks.cost.report import Clock
from benchmarks.cost.seed import Seeded


async def geoadd_load(
    redis_url: str, members: list[dict[str, Any]], rate: float, seconds: float
) -> int:
    """One GEOADD per fix, pipelined per flush (rate x 20 ms commands every 20 ms)."""
    redis = Redis.from_url(redis_url)
    keys = [f"bench:cost:geo:{m['specialty']}" for m in members]
    pos = [(m["lon"], m["lat"]) for m in members]
    n, sent = len(members), 0
    per_tick = rate * FLUSH_LINGER_S
    started = time.monotonic()
    try:
        for k in range(int(seconds / FLUSH_LINGER_S)):
            delay = started + k * FLUSH_LINGER_S - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            pipe = redis.pipeline(transaction=False)
            for j in range(int(k * per_tick), int((k + 1) * per_tick)):
                i = j % n
                lon, lat = pos[i]
                lat += 0.00001
                pos[i] = (lon, lat)
                pipe.geoadd(keys[i], (lon, lat, members[i]["id"]))
                sent += 1
            await pipe.execute()
    finally:
        await redis.delete(*set(keys))
        await redis.aclose()
    return sent


async def flat_out(
    args: argparse.Namespace, meter: Meter, workers: Any, port: int
) -> tuple[float, Delta]:
    """The bare loop flat out (the speed reference): frames received and the window."""
    count0 = await bare_count(port)
    per_worker = min(args.flat_sockets, args.sockets) // args.workers
    _r, delta = await measure(
        meter, workers.call_all("flat", args.flat_s, per_worker), settle_s=0.3
    )
    return await bare_count(port) - count0, delta


@contextlib.asynccontextmanager
async def bare_loop(meter: Meter, workers: Any, sockets: int) -> AsyncIterator[int]:
    """The bare receive loop (benchmarks/bare_ws.py) metered, with `sockets` of the
    workers connected to it; yields its port."""
    from tests.ports import free_port

    port = free_port()
    bare = start_module("benchmarks.bare_ws", str(port))
    try:
        await wait_http(f"http://127.0.0.1:{port}/count")
        meter.server_pid = bare.pid
        await workers.connect(f"http://127.0.0.1:{port}/ws", [None] * sockets)
        yield port
    finally:
        stop_process(bare)
        meter.server_pid = 0


async def speed_reference(args: argparse.Namespace, meter: Meter, helpers: Helpers) -> float:
    """The speed reference before the real server's phases, the baselines' own is taken a
    few minutes later: every ratio compares a window of each, so the run prints how far
    the machine's speed moved in between (report.py)."""
    workers = helpers.bare_workers
    # as many sockets open as for the baselines' flat-out window, so the two compare
    async with bare_loop(meter, workers, args.sockets) as port:
        frames, delta = await flat_out(args, meter, workers, port)
        await workers.call_all("disconnect")  # the same workers serve the baselines
    return frames / delta.elapsed


async def baseline_phase(
    args: argparse.Namespace,
    meter: Meter,
    seeded: Seeded,
    helpers: Helpers,
    fix_rate: float,
    clock: Clock,
) -> dict[str, Any]:
    """GEOADD (Redis), the bare receive loop, the bare handlers."""
    from tests.ports import free_port

    out: dict[str, Any] = {"redis_idle": await idle(meter, args.idle_s)}
    out["geo_sent"], out["geo_delta"] = await measure(
        meter, geoadd_load(args.redis_url, seeded.fix_artisans, fix_rate, args.fix_s)
    )
    clock.say(f"GEOADD baseline: {out['geo_sent']:,} commands at {fix_rate:,.0f}/s")

    workers = helpers.bare_workers
    async with bare_loop(meter, workers, args.sockets) as bare_port:
        await asyncio.sleep(args.pause_s)
        out["bare_idle"] = await idle(meter, args.idle_s)
        count0 = await bare_count(bare_port)
        per_worker = args.sockets // args.workers
        _r, out["bare_delta"] = await measure(
            meter, workers.call_all("rate", args.hz, args.fix_s, per_worker)
        )
        out["bare_frames"] = await bare_count(bare_port) - count0
        out["flat_frames"], out["flat_delta"] = await flat_out(args, meter, workers, bare_port)
        await workers.call_all("close")
    out["speed_ref"] = out["flat_frames"] / out["flat_delta"].elapsed
    clock.say(
        f"bare loop: {out['bare_frames']:,.0f} frames at the fix rate; "
        f"flat out {out['speed_ref']:,.0f} frames/s"
    )

    port = free_port()
    bare_http = start_module("benchmarks.bare_handler", str(port), args.database_url, SECRET)
    try:
        await wait_http(f"http://127.0.0.1:{port}/healthz")
        meter.server_pid = bare_http.pid
        driver = helpers.bare_driver
        base = f"http://127.0.0.1:{port}"
        await driver.call("setup", base, seeded.job_artisans, seeded.clients, False)
        clock.say("bare handlers up; one route per window:")
        out["routes"] = await request_phase(args, meter, driver, False)
        await driver.call("close")
    finally:
        stop_process(bare_http)
        meter.server_pid = 0
    return out
