"""One run of the cost model, in order: seed, the speed reference, the real server's
phases, the baselines, then the figures, the table and the result."""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
from redis.asyncio import Redis

from benchmarks.cost.baselines import baseline_phase, speed_reference
from benchmarks.cost.clients import Helpers
from benchmarks.cost.constants import ROOT
from benchmarks.cost.figures import figures
from benchmarks.cost.meter import Meter
from benchmarks.cost.phases import server_phase
from benchmarks.cost.processes import start_redis, stop_process
from benchmarks.cost.pyspy import Profiler
from benchmarks.cost.report import Clock, print_table
from benchmarks.cost.seed import seed


def git_commit() -> str:
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    return out.stdout.strip() or "unknown"


async def main(args: argparse.Namespace) -> dict[str, Any]:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    clock = Clock()
    res: dict[str, Any] = {
        "commit": git_commit(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": args.quick,
        "cpus": os.cpu_count(),
        "loadavg_start": list(os.getloadavg()),
    }
    print(
        f"bench_cost {'--quick ' if args.quick else ''}at {res['date']}, commit {res['commit']}, "
        f"{res['cpus']} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    helpers = Helpers(args.workers)
    redis_proc, redis_pid = await start_redis(args)
    res["redis"] = "private redis-server" if redis_proc else args.redis_url
    profiler = Profiler(args.profile)
    try:
        n_job = 2 * (args.req_jobs + args.warm_jobs)
        seeded = await seed(args.database_url, args.redis_url, args.sockets, n_job, args.clients)
        clock.say(
            f"seeded {len(seeded.fix_artisans)} + {len(seeded.job_artisans)} artisans, "
            f"{len(seeded.clients)} clients; Redis: {res['redis']} (pid {redis_pid})"
        )
        meter_conn = await asyncpg.connect(args.database_url)
        meter_redis = Redis.from_url(args.redis_url)
        try:
            meter = Meter(meter_conn, meter_redis, redis_pid)
            speed_at_start = await speed_reference(args, meter, helpers)
            clock.say(f"speed reference before the server's phases: {speed_at_start:,.0f} frames/s")
            real = await server_phase(args, meter, seeded, helpers, profiler, clock)
            fix_rate = real["accepted"] / real["fix_delta"].elapsed
            base = await baseline_phase(args, meter, seeded, helpers, fix_rate, clock)
        finally:
            await meter_conn.close()
            await meter_redis.aclose()
    finally:
        helpers.stop()
        if redis_proc is not None:
            stop_process(redis_proc)
    res["server_processes"] = real["server_processes"]
    res["driver_frames"] = real["driver_frames"]
    res.update(
        figures(args, real, base, fix_rate),
        speed_ref_start_frames_per_s=round(speed_at_start),
        speed_drift=round(base["speed_ref"] / speed_at_start - 1, 3),
        loadavg_end=list(os.getloadavg()),
        wall_s=round(time.monotonic() - clock.began, 1),
    )
    print_table(res)
    profiler.print()
    if profiler.reports:
        res["profile"] = profiler.reports
    return res
