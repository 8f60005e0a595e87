"""The real server's phases: one window per route, then whole jobs, then fixes."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from benchmarks.cost.clients import Helpers
from benchmarks.cost.constants import ROUTES, STATUSES
from benchmarks.cost.driver import DriverProc
from benchmarks.cost.meter import Meter, idle, measure, per_unit
from benchmarks.cost.probes import fix_counters, wait_http, wait_workers
from benchmarks.cost.processes import start_server, stop_process
from benchmarks.cost.pyspy import Profiler
from benchmarks.cost.report import Clock
from benchmarks.cost.seed import Seeded


async def request_phase(
    args: argparse.Namespace,
    meter: Meter,
    driver: DriverProc,
    real: bool,
    profiler: Profiler | None = None,
) -> dict[str, Any]:
    """Warm-up, the idle rate, then each route alone in its own window."""
    out: dict[str, Any] = {}
    await driver.call("route", "login", 2, 10.0)
    for name in ("create", "get", "accept", *STATUSES, "me"):
        await driver.call("route", name, args.warm_jobs, args.req_rate)
    await asyncio.sleep(args.pause_s)
    out["idle"] = await idle(meter, args.idle_s)
    for name, _label in ROUTES:
        count = args.logins if name == "login" else args.req_jobs
        rate = args.login_rate if name == "login" else args.req_rate
        if profiler is not None:
            profiler.start(meter.server_pid, name)
            if profiler.proc is not None:
                await asyncio.sleep(0.5)  # py-spy attaches
        result, delta = await measure(
            meter, driver.call("route", name, count, rate), settle_s=args.settle_s
        )
        if profiler is not None:
            profiler.stop(name)
        out[name] = {"result": result, "delta": delta}
        ok = result["ok"]
        costs = {p: per_unit(delta, out["idle"], ok, p) for p in ("server", "pg", "redis")}
        print(
            f"  {'zendo' if real else 'bare '} {name:<11} {ok:>4} ok {result['statuses']}: "
            + ", ".join(
                f"{p} {net:,.0f} µs (gross {gross:,.0f})" for p, (net, gross) in costs.items()
            )
            + f"; Redis {delta.redis_cmds / max(1, ok):.1f} commands/request, "
            f"{delta.redis_conns} new connections",
            flush=True,
        )
    return out


async def server_phase(
    args: argparse.Namespace,
    meter: Meter,
    seeded: Seeded,
    helpers: Helpers,
    profiler: Profiler,
    clock: Clock,
) -> dict[str, Any]:
    """The real server: route windows, then whole jobs, then fixes."""
    from tests.ports import free_port

    out: dict[str, Any] = {}
    port = free_port()
    server = start_server(args, port, ping_rate=max(2.0, 2 * args.hz))
    try:
        await wait_http(f"http://127.0.0.1:{port}/healthz")
        n_workers = await wait_workers(server.pid, port, args.server_workers)
        meter.server_pid = server.pid
        out["server_processes"] = n_workers
        driver = helpers.real_driver
        base = f"http://127.0.0.1:{port}"
        setup = await driver.call("setup", base, seeded.job_artisans, seeded.clients, True)
        await driver.call("fixes")
        await asyncio.sleep(args.pause_s)
        clock.say(
            f"zendo serve up ({n_workers} worker process(es)); driver holds "
            f"{setup['sockets']} sockets; one route per window:"
        )
        out["routes"] = await request_phase(args, meter, driver, True, profiler)
        await driver.call("fixes")  # a recent fix, to be ONLINE again after a job
        await asyncio.sleep(args.pause_s)
        out["story"], out["story_delta"] = await measure(
            meter, driver.call("story", args.jobs, args.job_rate), args.settle_s
        )
        out["driver_frames"] = (await driver.call("close"))["frames"]
        clock.say(f"jobs: {out['story']['outcomes']} in {out['story']['elapsed']:.1f} s")

        workers = helpers.real_workers
        per_worker = args.sockets // args.workers
        tokens = [a["token"] for a in seeded.fix_artisans]
        out["connected"] = await workers.connect(f"{base}/ws", tokens)
        await workers.call_all("rate", args.hz, args.warm_s, per_worker)  # all ONLINE
        await asyncio.sleep(args.pause_s)
        out["fix_idle"] = await idle(meter, args.idle_s)
        before, rejected0 = await fix_counters(port)
        profiler.start(server.pid, "fixes")
        if profiler.proc is not None:
            await asyncio.sleep(0.5)  # py-spy attaches
        results, out["fix_delta"] = await measure(
            meter, workers.call_all("rate", args.hz, args.fix_s, per_worker, args.fix_step_m)
        )
        profiler.stop("fixes")
        accepted, rejected = await fix_counters(port)
        out["accepted"], out["rejected"] = accepted - before, rejected - rejected0
        out["sent"] = sum(r["sent"] for r in results)
        await workers.call_all("close")
        clock.say(
            f"fixes: {out['connected']} sockets, sent {out['sent']:,}, accepted "
            f"{out['accepted']:,.0f}, rejected {out['rejected']:,.0f} in "
            f"{out['fix_delta'].elapsed:.1f} s"
        )
    finally:
        stop_process(server)
        meter.server_pid = 0
    return out
