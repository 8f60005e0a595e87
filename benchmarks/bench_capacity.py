"""What this machine can hold (not a test): the README's load test, its job rate stepped up.

    .venv/bin/python -m benchmarks.bench_capacity [--rates 30,45,60,75,90,105,120] [--step-s 35]

Starts `zendo serve` as `make run` does (its default worker count, the README's two abuse
limits raised) on a scratch database (TRUNCATEd) and a Redis of its own, seeds
`--artisans` artisans and enough clients with `zendo seed`, then runs the README's
locust command (benchmarks/locustfile.py, locust on the same cores) with the job rate
in steps (benchmarks/locust_steps.py): after the ramp and the warm-up, each rate for
`--step-s` seconds, the artisans pinging every 4 s throughout. Per step, from locust's
side: jobs created and shed per second, failures, p99 of every request and of create ->
first offer and accept -> client status; the CPU per created job of the server, its
PostgreSQL backends, Redis and locust (from /proc), and the machine's idle share. A
step holds when nothing failed, at least `--min-created` of its rate was created and
every p99 is within `--p99-ms`. Last, the bare aiohttp receive loop's frames/s: the speed
reference, so that the figures scale to another machine. Prints a table, the largest
rate held, and a JSON line with every number.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
from redis.asyncio import Redis

from benchmarks.bench_gateway import Workers, bare_ceiling
from benchmarks.children import die_with_parent
from benchmarks.cost.constants import ROOT
from benchmarks.cost.meter import Meter, Snap, tree_cpu_s
from benchmarks.cost.processes import start_redis, stop_process
from benchmarks.quiet import machine_cpu
from benchmarks.rate_steps import SETTLE_S, parse_rates
from benchmarks.scratch_db import database_name, database_url, truncate
from tests.gateway.processes import wait_healthy
from tests.ports import free_port

SECRET = "bench-capacity-secret-" + "x" * 40
ADMIN = ("admin@capacity.bench.zendo.test", "capacity-admin-password-1")
# Rows that must answer within the target (by locust's name); the shed rows and the
# admin's polling are reported, not judged.
JUDGED_LATENCIES = ("create -> first offer frame", "accept -> client status frame")
SPAWN_RATE = 300  # users started per second, as in the README's command


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--database-url",
        type=database_url,
        default="postgresql:///zendo_capacity",
        help="created and migrated if need be; TRUNCATEd",
    )
    p.add_argument("--redis-url", default="private", help="'private' (default) or a URL (FLUSHed)")
    p.add_argument("--artisans", type=int, default=10_000)
    p.add_argument("--fix-every-s", type=float, default=4.0, help="an artisan's fix period")
    p.add_argument("--rates", default="30,45,60,75,90,105,120", help="jobs/s, one step each")
    p.add_argument("--step-s", type=float, default=35.0)
    p.add_argument("--warmup-s", type=float, default=30.0)
    p.add_argument("--pacing-s", type=float, default=6.0, help="a client's seconds per job")
    p.add_argument("--server-workers", type=int, help="default: the server's own")
    p.add_argument("--p99-ms", type=float, default=250.0)
    p.add_argument("--min-created", type=float, default=0.95, help="share of the rate")
    p.add_argument("--flat-sockets", type=int, default=2000, help="bare-loop reference")
    p.add_argument("--flat-s", type=float, default=8.0)
    args = p.parse_args(argv)
    try:
        args.rate_list = list(parse_rates(args.rates))
    except ValueError as exc:
        p.error(f"--rates: {exc}")
    if not args.rate_list:
        p.error(f"--rates: one or more positive job rates, comma-separated (got {args.rates!r})")
    if args.step_s <= SETTLE_S:
        p.error(f"--step-s must exceed the {SETTLE_S:g} s each step settles")
    return args


def server_env(args: argparse.Namespace, port: int, state_dir: str) -> dict[str, str]:
    return {
        **os.environ,
        "ZENDO_PORT": str(port),
        "ZENDO_DATABASE_URL": args.database_url,
        "ZENDO_REDIS_URL": args.redis_url,
        "ZENDO_JWT_SECRET": SECRET,
        "ZENDO_STATE_DIR": state_dir,
        # The README's load test raises these two (CONTRACT §8a): its few clients each
        # keep several jobs open.
        "ZENDO_MAX_OPEN_JOBS_PER_CLIENT": "1000",
        "ZENDO_JOBS_PER_MIN_PER_CLIENT": "1000",
    }


async def reset(args: argparse.Namespace) -> None:
    conn = await asyncpg.connect(args.database_url)
    try:
        await truncate(conn)
    finally:
        await conn.close()
    redis = Redis.from_url(args.redis_url)
    await redis.flushdb()
    await redis.aclose()


def zendo(env: dict[str, str], *argv: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "zendo.cli", *argv],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=300,
    )


def start_server(
    args: argparse.Namespace, env: dict[str, str], work: Path
) -> subprocess.Popen[bytes]:
    workers = [] if args.server_workers is None else ["--workers", str(args.server_workers)]
    return subprocess.Popen(
        [sys.executable, "-m", "zendo.cli", "serve", "--port", env["ZENDO_PORT"], *workers],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(work / "server.log", "wb"),
        preexec_fn=die_with_parent,  # started from the bench's main thread (its event loop)
    )


def start_locust(
    args: argparse.Namespace, port: int, users: int, run_s: float, clients: int, work: Path
) -> subprocess.Popen[bytes]:
    """The README's locust command, with the rate steps (benchmarks/locust_steps.py)."""
    return subprocess.Popen(
        [
            *(str(Path(sys.executable).parent / "locust"), "-f", "benchmarks/locustfile.py"),
            *("--headless", "--host", f"http://127.0.0.1:{port}", "--only-summary"),
            *("-u", str(users), "-r", str(SPAWN_RATE), "-t", f"{run_s:.0f}s"),
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "ZENDO_SEED_FILE": str(work / "seed.jsonl"),
            "ZENDO_BENCH_CLIENTS": str(clients),
            "ZENDO_BENCH_FIX_EVERY_S": str(args.fix_every_s),
            "ZENDO_BENCH_CLIENT_PACING": str(args.pacing_s),
            "ZENDO_BENCH_WARMUP_S": str(args.warmup_s),
            "ZENDO_BENCH_RATE_STEPS": args.rates,
            "ZENDO_BENCH_STEP_S": str(args.step_s),
            "ZENDO_BENCH_STEPS_OUT": str(work / "steps.jsonl"),
            "ZENDO_BENCH_ADMIN_EMAIL": ADMIN[0],
            "ZENDO_BENCH_ADMIN_PASSWORD": ADMIN[1],
        },
        stdout=open(work / "locust.log", "wb"),
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,  # started from the bench's main thread (its event loop)
    )


def prepare_database(args: argparse.Namespace, env: dict[str, str]) -> None:
    """The scratch database, created and migrated if need be (as `make db` does)."""
    name = database_name(args.database_url)
    subprocess.run(["./scripts/ensure-db.sh", name], cwd=ROOT, check=True)
    zendo(env, "migrate")


class Timeline:
    """A CPU snapshot of every component each second, on the wall clock (the steps'
    boundaries come from the locust process as wall-clock times)."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.locust_pid = 0
        self.points: list[tuple[float, Snap, float, tuple[float, float]]] = []

    async def run(self) -> None:
        while True:
            snap = await self.meter.snap()
            locust = tree_cpu_s(self.locust_pid) if self.locust_pid else 0.0
            self.points.append((time.time(), snap, locust, machine_cpu()))
            await asyncio.sleep(1.0)

    def window(self, started: float, ended: float) -> dict[str, float] | None:
        """CPU seconds per component between the first point after `started` and the
        last before `ended`, and that span's length."""
        inside = [p for p in self.points if started <= p[0] <= ended]
        if len(inside) < 2:
            return None
        (t0, a, loc0, m0), (t1, b, loc1, m1) = inside[0], inside[-1]
        d = Meter.delta(a, b)
        return {
            "seconds": t1 - t0,
            "server": d.server,
            "pg": d.pg,
            "redis": d.redis,
            "locust": loc1 - loc0,
            "idle_share": (m1[1] - m0[1]) / max(1e-9, m1[0] - m0[0]),
        }


def judge(step: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """A step's figures and whether it held."""
    rows = step["rows"]
    seconds = step["ended"] - step["started"]
    created = rows.get("/interventions", {}).get("n", 0) / seconds
    shed = rows.get("POST /interventions shed (503 overloaded)", {}).get("n", 0) / seconds
    failures = sum(r["failures"] for r in rows.values()) + sum(step["errors"].values())
    judged = {
        name: row["p99_ms"]
        for name, row in rows.items()
        if (row["type"] in ("POST", "GET") and "shed" not in name and name != "/admin/match")
        or name in JUDGED_LATENCIES
    }
    worst = max(judged.items(), key=lambda kv: kv[1] or 0.0, default=("", 0.0))
    return {
        "rate": step["rate"],
        "created_per_s": created,
        "shed_per_s": shed,
        "failures": failures,
        "p99_ms": judged,
        "worst_p99": worst,
        "first_offer_p99_ms": rows.get(JUDGED_LATENCIES[0], {}).get("p99_ms"),
        "accept_p99_ms": rows.get(JUDGED_LATENCIES[1], {}).get("p99_ms"),
        "held": failures == 0
        and created >= args.min_created * step["rate"]
        and (worst[1] or 0.0) <= args.p99_ms,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    redis_proc, redis_pid = await start_redis(args)
    clients = max(round(r * args.pacing_s) for r in args.rate_list)
    work = Path(tempfile.mkdtemp(prefix="zendo-capacity-"))
    seed_file, steps_file = work / "seed.jsonl", work / "steps.jsonl"
    port = free_port()
    env = server_env(args, port, str(work / "state"))
    server = locust = None
    timeline_task = None
    try:
        prepare_database(args, env)
        await reset(args)
        zendo(env, "seed", "--artisans", str(args.artisans), "--clients", str(clients),
              "--out", str(seed_file))  # fmt: skip
        zendo(env, "create-admin", "--email", ADMIN[0], "--password", ADMIN[1])
        server = start_server(args, env, work)
        await wait_healthy(port, timeout_s=60)
        conn = await asyncpg.connect(args.database_url)
        redis = Redis.from_url(args.redis_url)
        meter = Meter(conn, redis, redis_pid)
        meter.server_pid = server.pid
        timeline = Timeline(meter)
        timeline_task = asyncio.create_task(timeline.run())
        users = args.artisans + clients + 1
        ramp_s = users / SPAWN_RATE
        run_s = ramp_s + args.warmup_s + len(args.rate_list) * args.step_s + 30
        print(
            f"{args.artisans:,} artisans (1 fix / {args.fix_every_s:g} s), {clients} clients, rates "
            f"{args.rates} jobs/s, {args.step_s:.0f} s each after a {ramp_s:.0f} s ramp and "
            f"{args.warmup_s:.0f} s warm-up",
            flush=True,
        )
        locust = start_locust(args, port, users, run_s, clients, work)
        timeline.locust_pid = locust.pid
        await asyncio.to_thread(locust.wait)
        timeline_task.cancel()
        await conn.close()
        await redis.aclose()
        steps = [json.loads(line) for line in steps_file.read_text().splitlines()]
        results = []
        for step in steps:
            figures = judge(step, args)
            cpu = timeline.window(step["started"], step["ended"])
            if cpu is not None:
                jobs = max(1e-9, figures["created_per_s"] * cpu["seconds"])
                for part in ("server", "pg", "redis", "locust"):
                    figures[f"{part}_ms_per_job"] = cpu[part] * 1000 / jobs
                    figures[f"{part}_cores"] = cpu[part] / cpu["seconds"]
                figures["idle_share"] = cpu["idle_share"]
            results.append(figures)
    finally:
        if timeline_task is not None:
            timeline_task.cancel()
        for proc in (locust, server):
            if proc is not None:
                stop_process(proc)
        if redis_proc is not None:
            stop_process(redis_proc)
    bare = Workers(3)
    try:
        speed = await bare_ceiling(bare, args.flat_sockets, args.flat_s)
    finally:
        bare.stop()
    return {"steps": results, "speed_ref_bare_frames_per_s": speed, "logs": str(work)}


def report(args: argparse.Namespace, out: dict[str, Any]) -> None:
    print(f"\n== capacity, speed reference (bare loop) {out['speed_ref_bare_frames_per_s']:,.0f} "
          "frames/s ==")  # fmt: skip
    head = (
        f"{'jobs/s asked':>12} | {'created':>7} | {'shed':>5} | {'fail':>4} | "
        f"{'worst p99 (ms)':<42} | {'offer, accept p99':>17} | "
        f"{'gross ms/job srv+PG+Redis, locust':>28} | {'idle':>4} | held"
    )
    print(head)
    print("-" * len(head))
    for s in out["steps"]:
        name, p99 = s["worst_p99"]
        cpu = (
            f"{s['server_ms_per_job']:.1f}+{s['pg_ms_per_job']:.1f}+{s['redis_ms_per_job']:.1f}"
            f", {s['locust_ms_per_job']:.1f}"
            if "server_ms_per_job" in s
            else "-"
        )
        print(
            f"{s['rate']:>12.0f} | {s['created_per_s']:>7.1f} | {s['shed_per_s']:>5.1f} | "
            f"{s['failures']:>4} | {f'{p99:.0f} {name}'[:42]:<42} | "
            f"{s['first_offer_p99_ms'] or 0:>7.0f}, {s['accept_p99_ms'] or 0:>7.0f} | "
            f"{cpu:>28} | {s.get('idle_share', 0):>4.0%} | {'✔' if s['held'] else '✘'}"
        )
    # The largest rate held with every lower step held too (a lucky step past a failed
    # one is not capacity).
    best = None
    for step in sorted(out["steps"], key=lambda s: s["rate"]):
        if not step["held"]:
            break
        best = step
    out["held_jobs_per_s"] = best["rate"] if best else 0.0
    fixes = f"1 fix / {args.fix_every_s:g} s, {args.artisans / args.fix_every_s:,.0f} fixes/s"
    print(
        f"\nholds {out['held_jobs_per_s']:.0f} jobs/s with {args.artisans:,} artisans ({fixes}):"
        f" nothing failed, >= {args.min_created:.0%} of the rate created, every p99 <= "
        f"{args.p99_ms:.0f} ms (locust's view, locust on the same cores)"
        if best
        else "\nno step held"
    )
    print(f"logs: {out['logs']}")
    print(json.dumps(out))


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    out = asyncio.run(run(args))
    report(args, out)


if __name__ == "__main__":
    main()
