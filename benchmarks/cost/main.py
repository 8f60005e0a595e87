"""One run of the cost model, in order: seed both databases, start every process
compared, the speed reference, the alternated phases, then the figures, the table and
the result."""

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

from benchmarks.cost.clients import Helpers
from benchmarks.cost.constants import ROOT
from benchmarks.cost.figures import figures
from benchmarks.cost.meter import Meter
from benchmarks.cost.phases import fix_phase, request_phase, speed_reference, story_phase
from benchmarks.cost.processes import start_redis, stop_process
from benchmarks.cost.pyspy import Profiler
from benchmarks.cost.report import Clock, print_table
from benchmarks.cost.seed import seed
from benchmarks.cost.stack import stack
from benchmarks.scratch_db import ensure_database


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
        for dsn in (args.database_url, args.bare_database_url):
            await ensure_database(dsn)
        n_job = 2 * (args.req_jobs + args.warm_jobs)
        seeded = await seed(
            [args.database_url, args.bare_database_url],
            args.redis_url,
            args.sockets,
            n_job,
            args.clients,
        )
        clock.say(
            f"seeded {len(seeded.fix_artisans)} + {len(seeded.job_artisans)} artisans, "
            f"{len(seeded.clients)} clients in two databases; Redis: {res['redis']} "
            f"(pid {redis_pid})"
        )
        meter_conn = await asyncpg.connect(args.database_url)
        meter_redis = Redis.from_url(args.redis_url)
        try:
            meter = Meter(meter_conn, meter_redis, redis_pid)
            async with stack(args, seeded, helpers, clock) as st:
                speed_at_start = await speed_reference(args, meter, st, helpers)
                clock.say(f"speed reference: {speed_at_start:,.0f} frames/s; one route per window:")
                routes = await request_phase(args, meter, st, helpers, profiler)
                story, story_delta = await story_phase(args, meter, st, helpers)
                clock.say(f"jobs: {story['outcomes']} in {story['elapsed']:.1f} s")
                driver_frames = (await helpers.real_driver.call("close"))["frames"]
                await helpers.bare_driver.call("close")
                real, base = await fix_phase(args, meter, st, seeded, helpers, profiler, clock)
                server_processes = st.server_processes
        finally:
            await meter_conn.close()
            await meter_redis.aclose()
    finally:
        helpers.stop()
        if redis_proc is not None:
            stop_process(redis_proc)
    real.update(routes=routes["zendo"], story=story, story_delta=story_delta)
    base["routes"] = routes["bare"]
    fix_rate = real["accepted"] / real["fix_delta"].elapsed
    res["server_processes"] = server_processes
    res["driver_frames"] = driver_frames
    res["rounds"] = args.rounds
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
