"""Gateway benchmark (not a test): sockets, pings/s, lag, RSS per socket, bare ceiling.

    .venv/bin/python -m benchmarks.bench_gateway [--sockets 15000] [--active 10000]

Seeds verified artisans into the database (TRUNCATEs it: use a scratch/test one), starts
one gateway process (`zendo serve`) and a few load-generator processes (benchmarks/
loadgen.py), all on loopback, then in one run measures:
  1. RSS per open authenticated socket (VmRSS delta / sockets), the sockets opened as fast
     as the generators can, each refused one retried by the README's reconnect rule,
  2. accepted pings/s with `--active` sockets at 1 Hz, and the ping-to-visible lag
     (probe sockets: fix sent -> readable via GET /admin/artisans/{id}/live, and in an
     ArtisanIndex mirror in this process, as a dispatcher would see it) p50/p99,
  3. the gateway ceiling: every socket sending flat out (accepted pings/s),
  4. the bare aiohttp receive-loop ceiling (benchmarks/bare_ws.py) with the same driver,
and prints the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import re
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from redis.asyncio import Redis

from benchmarks.arguments import positive_float, positive_int
from benchmarks.children import die_with_parent
from benchmarks.cost.meter import tree_cpu_s
from benchmarks.loadgen import run_worker
from benchmarks.quiet import before_reference
from benchmarks.scratch_db import database_url, ensure_database
from core.tokens import issue_access_token
from tests.gateway.processes import wait_healthy
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-" + "x" * 40


async def redis_pid(redis_url: str) -> int | None:
    """The pid of the Redis server at `redis_url` (not just any redis-server running)."""
    redis = Redis.from_url(redis_url)
    try:
        info = await redis.info("server")
    except OSError:
        return None
    finally:
        await redis.aclose()
    return int(info["process_id"])


def rss_kib(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", text).group(1))  # type: ignore[union-attr]


async def seed(dsn: str, redis_url: str, n: int) -> tuple[list[uuid.UUID], uuid.UUID]:
    """``n`` verified artisans and an admin in the scratch database (created and migrated
    if need be, then emptied of users), and its Redis db FLUSHed."""
    await ensure_database(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE users CASCADE")
        emails = [f"bench-{i}@example.com" for i in range(n)]
        ids = await conn.fetch(
            """INSERT INTO users (email, password_hash, role, is_verified)
               SELECT e, 'x', 'ARTISAN', true FROM unnest($1::text[]) AS e RETURNING id""",
            emails,
        )
        artisan_ids = [r["id"] for r in ids]
        specialties = [
            "PLUMBER",
            "ELECTRICIAN",
            "LOCKSMITH",
            "HEATING",
            "GLAZIER",
            "APPLIANCE_REPAIR",
        ]
        await conn.execute(
            """INSERT INTO artisans (user_id, status, level, specialty, rating)
               SELECT id, 'VERIFIED', 'STANDARD', s, 4.5 FROM unnest($1::uuid[], $2::text[]) AS t(id, s)""",
            artisan_ids,
            [specialties[i % 6] for i in range(n)],
        )
        admin = await conn.fetchval(
            "INSERT INTO users (email, password_hash, role, is_verified) VALUES ('bench-admin@example.com','x','ADMIN',true) RETURNING id"
        )
    finally:
        await conn.close()
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    await redis.aclose()
    return artisan_ids, admin


def token(user_id: uuid.UUID, role: str) -> str:
    return issue_access_token(SECRET, user_id=user_id, role=role, ttl_s=3600)


def _gateway_child() -> None:
    """In the gateway before it runs: its descriptors raised, and SIGTERM for it when the
    bench dies (bench_gateway and bench_storm start it from their main thread)."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
    die_with_parent()


def start_gateway(
    args: argparse.Namespace, port: int, workers: int | None = 1
) -> subprocess.Popen[bytes]:
    """`zendo serve` with `workers` processes (None: its own count, ZENDO_WORKERS or the
    cores). One by default: its CPU and RSS are what bench_gateway measures."""
    env = {
        **os.environ,
        "ZENDO_PORT": str(port),
        "ZENDO_DATABASE_URL": args.database_url,
        "ZENDO_REDIS_URL": args.redis_url,
        "ZENDO_JWT_SECRET": SECRET,
        "ZENDO_PING_RATE_PER_S": "1000",
        "ZENDO_STATE_DIR": "/tmp/zendo-bench",
        # bench_storm's probe client creates (and cancels) a job every 0.2 s
        "ZENDO_JOBS_PER_MIN_PER_CLIENT": "1000",
    }
    pool = [] if workers is None else ["--workers", str(workers)]
    return subprocess.Popen(
        [sys.executable, "-m", "zendo.cli", "serve", "--port", str(port), *pool],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open("/tmp/zendo-bench-gateway.log", "wb"),
        preexec_fn=_gateway_child,
    )


class Workers:
    """Load-generator processes (benchmarks/loadgen.py). Make them from the main thread:
    each gets SIGTERM when the thread that started it ends (loadgen.run_worker)."""

    def __init__(self, n: int) -> None:
        ctx = mp.get_context("spawn")
        self.pipes = []
        self.procs = []
        for _ in range(n):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=run_worker, args=(child,), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    async def call_each(self, commands: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
        for pipe, command in zip(self.pipes, commands, strict=True):
            pipe.send(command)
        loop = asyncio.get_running_loop()
        return list(await asyncio.gather(*(loop.run_in_executor(None, p.recv) for p in self.pipes)))

    async def call_all(self, *command: Any) -> list[dict[str, Any]]:
        return await self.call_each([command] * len(self.pipes))

    async def connect(self, url: str, tokens: list[str | None]) -> int:
        n = len(self.pipes)
        results = await self.call_each([("connect", url, tokens[i::n]) for i in range(n)])
        return sum(r["connected"] for r in results)

    def stop(self) -> None:
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()


async def metric(session: aiohttp.ClientSession, port: int, name: str) -> float:
    async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


# A probe moves 33 m a fix (66 m/s at one fix per 0.5 s, under the gateway's 70 m/s):
# every fix then moves the artisan's PostgreSQL copy (25 m), so it reaches the index
# mirrors; a smaller move updates the live hash only (gateway/lua.py APPLY_FIXES).
PROBE_STEP_DEG = 0.0003


async def probe_lag(
    port: int, probes: list[tuple[uuid.UUID, str]], admin_token: str, index: Any, seconds: float
) -> tuple[list[float], list[float]]:
    """Each probe artisan sends a fix every ~0.5 s and times its visibility."""
    http_lags: list[float] = []
    index_lags: list[float] = []
    headers = {"Authorization": f"Bearer {admin_token}"}
    async with aiohttp.ClientSession() as session:

        async def one(artisan_id: uuid.UUID, tok: str, k: int) -> None:
            ws = await session.ws_connect(
                f"http://127.0.0.1:{port}/ws", headers={"Authorization": f"Bearer {tok}"}
            )
            await ws.receive()
            reader = asyncio.create_task(_drain(ws))
            lat = 48.80 + k * 0.001
            deadline = time.monotonic() + seconds
            await asyncio.sleep(k * 0.025)
            while time.monotonic() < deadline:
                lat += PROBE_STEP_DEG
                sent = time.perf_counter()
                await ws.send_str(
                    f'{{"type":"location","lat":{lat:.7f},"lon":2.3,"ts":{int(time.time() * 1000)}}}'
                )
                seen_http = seen_index = None
                while seen_http is None or seen_index is None:
                    if seen_index is None:
                        rec = index.get(str(artisan_id))
                        if rec is not None and abs(rec.lat - lat) < 1e-9:
                            seen_index = time.perf_counter() - sent
                    if seen_http is None:
                        async with session.get(
                            f"http://127.0.0.1:{port}/admin/artisans/{artisan_id}/live",
                            headers=headers,
                        ) as resp:
                            if resp.status == 200 and abs((await resp.json())["lat"] - lat) < 1e-9:
                                seen_http = time.perf_counter() - sent
                    if time.perf_counter() - sent > 5:
                        break
                    await asyncio.sleep(0.003)
                if seen_http is not None:
                    http_lags.append(seen_http)
                if seen_index is not None:
                    index_lags.append(seen_index)
                await asyncio.sleep(0.5)
            reader.cancel()
            await ws.close()

        await asyncio.gather(*(one(a, t, k) for k, (a, t) in enumerate(probes)))
    return http_lags, index_lags


async def _drain(ws: aiohttp.ClientWebSocketResponse) -> None:
    async for _msg in ws:
        pass


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


async def main(args: argparse.Namespace) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    report: dict[str, Any] = {}
    n_probes = 20
    t0 = time.monotonic()
    artisan_ids, admin_id = await seed(args.database_url, args.redis_url, args.sockets + n_probes)
    print(f"seeded {len(artisan_ids)} artisans in {time.monotonic() - t0:.1f}s", flush=True)
    probes = [(a, token(a, "ARTISAN")) for a in artisan_ids[:n_probes]]
    load_tokens: list[str | None] = [token(a, "ARTISAN") for a in artisan_ids[n_probes:]]
    admin_token = token(admin_id, "ADMIN")

    import matching
    from gateway.mirror import follow, new_index

    await asyncio.to_thread(matching.warmup)
    index = new_index()
    mirror_redis = Redis.from_url(args.redis_url, decode_responses=True)
    mirror_task = asyncio.create_task(follow(mirror_redis, index))

    port = free_port()
    gateway = start_gateway(args, port)
    workers = Workers(args.workers)
    try:
        await wait_healthy(port, timeout_s=60)
        await asyncio.sleep(1.0)
        rss_before = rss_kib(gateway.pid)
        t0 = time.monotonic()
        connected = await workers.connect(f"http://127.0.0.1:{port}/ws", load_tokens)
        await asyncio.sleep(2.0)
        rss_after = rss_kib(gateway.pid)
        report["sockets"] = connected
        report["connect_s"] = time.monotonic() - t0
        report["rss_before_mib"] = rss_before / 1024
        report["rss_after_mib"] = rss_after / 1024
        report["rss_per_socket_kib"] = (rss_after - rss_before) / max(1, connected)
        print(
            f"connected {connected} of {len(load_tokens)} sockets in {report['connect_s']:.1f}s "
            "(refusals retried by the README's rule); "
            f"RSS {rss_before / 1024:.0f} -> {rss_after / 1024:.0f} MiB = "
            f"{report['rss_per_socket_kib']:.1f} KiB/socket",
            flush=True,
        )

        async with aiohttp.ClientSession() as session:
            per_worker = args.active // args.workers
            before = await metric(session, port, "zendo_pings_accepted_total")
            rpid = await redis_pid(args.redis_url)
            cpu0 = (
                tree_cpu_s(gateway.pid),
                tree_cpu_s(rpid) if rpid else 0.0,
                sum(tree_cpu_s(p.pid) for p in workers.procs if p.pid is not None),
            )
            t0 = time.monotonic()
            rate_task = asyncio.create_task(
                workers.call_all("rate", 1.0, args.duration, per_worker)
            )
            await asyncio.sleep(3.0)  # let the 1 Hz load settle before probing
            probe_task = asyncio.create_task(
                probe_lag(port, probes, admin_token, index, args.duration - 6)
            )
            results = await rate_task
            elapsed = max(r["elapsed"] for r in results)
            after = await metric(session, port, "zendo_pings_accepted_total")
            http_lags, index_lags = await probe_task
            sent = sum(r["sent"] for r in results)
            cpu1 = (
                tree_cpu_s(gateway.pid),
                tree_cpu_s(rpid) if rpid else 0.0,
                sum(tree_cpu_s(p.pid) for p in workers.procs if p.pid is not None),
            )
            report["rate_cpu_cores"] = {
                name: round((b - a) / elapsed, 2)
                for name, a, b in zip(("gateway", "redis", "loadgen"), cpu0, cpu1, strict=True)
            }
            print(f"CPU cores busy during the 1 Hz phase: {report['rate_cpu_cores']}", flush=True)
            report["rate_sent_per_s"] = sent / elapsed
            report["rate_accepted_per_s"] = (after - before) / elapsed
            report["lag_http_ms"] = (pct(http_lags, 0.5), pct(http_lags, 0.99), len(http_lags))
            report["lag_index_ms"] = (pct(index_lags, 0.5), pct(index_lags, 0.99), len(index_lags))
            print(
                f"1 Hz x {args.active}: sent {report['rate_sent_per_s']:.0f}/s, accepted "
                f"{report['rate_accepted_per_s']:.0f}/s; lag /live p50 {report['lag_http_ms'][0]:.1f} ms "
                f"p99 {report['lag_http_ms'][1]:.1f} ms (n={len(http_lags)}); index p50 "
                f"{report['lag_index_ms'][0]:.1f} ms p99 {report['lag_index_ms'][1]:.1f} ms",
                flush=True,
            )

            before = await metric(session, port, "zendo_pings_accepted_total")
            t0 = time.monotonic()
            results = await workers.call_all("flat", args.flat_s, args.flat_sockets // args.workers)
            await asyncio.sleep(0.5)
            elapsed = time.monotonic() - t0
            after = await metric(session, port, "zendo_pings_accepted_total")
            report["gateway_ceiling_per_s"] = (after - before) / elapsed
            report["gateway_flat_sent_per_s"] = sum(r["sent"] for r in results) / elapsed
            print(
                f"gateway ceiling: {report['gateway_ceiling_per_s']:.0f} accepted/s "
                f"(offered {report['gateway_flat_sent_per_s']:.0f}/s)",
                flush=True,
            )
        # Graceful shutdown with every socket still open (the loadgen answers the close
        # handshake): bounded by GatewayConfig.shutdown_close_s plus one batched cleanup.
        t0 = time.monotonic()
        gateway.terminate()
        await asyncio.to_thread(gateway.wait, 60)
        report["shutdown_s"] = time.monotonic() - t0
        print(f"graceful shutdown with {connected} sockets open: {report['shutdown_s']:.1f}s")
        await workers.call_all("close")
    finally:
        workers.stop()
        if gateway.poll() is None:
            gateway.terminate()
            try:
                gateway.wait(timeout=60)
            except subprocess.TimeoutExpired:
                gateway.kill()
                gateway.wait()
        mirror_task.cancel()
        await asyncio.gather(mirror_task, return_exceptions=True)
        await mirror_redis.aclose()

    workers = Workers(args.workers)
    try:
        report["bare_ceiling_per_s"] = await bare_ceiling(workers, args.flat_sockets, args.flat_s)
    finally:
        workers.stop()
    print(f"bare ceiling: {report['bare_ceiling_per_s']:.0f} frames/s", flush=True)
    ratio = report["gateway_ceiling_per_s"] / report["bare_ceiling_per_s"]
    print(f"ratio gateway/bare ceiling: {ratio:.2f}", flush=True)
    print(report, flush=True)


async def bare_ceiling(workers: Workers, sockets: int, seconds: float) -> float:
    """The bare aiohttp receive loop's frames/s with `sockets` sending flat out: the
    machine's speed reference (benchmarks/bare_ws.py, the same driver as the gateway),
    once the work of the phase before has drained (`benchmarks.quiet`)."""
    await before_reference()
    port = free_port()
    bare = subprocess.Popen(  # noqa: ASYNC220 - started once, before measuring
        [sys.executable, "-m", "benchmarks.bare_ws", str(port)],
        cwd=ROOT,
        preexec_fn=die_with_parent,  # from the bench's main thread (its event loop)
    )
    try:
        deadline = time.monotonic() + 20
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.get(f"http://127.0.0.1:{port}/count") as resp:
                        before = (await resp.json())["count"]
                        break
                except aiohttp.ClientError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.1)
            await workers.connect(f"http://127.0.0.1:{port}/ws", [None] * sockets)
            t0 = time.monotonic()
            await workers.call_all("flat", seconds, sockets // len(workers.pipes))
            await asyncio.sleep(0.5)  # the frames still buffered are counted too
            elapsed = time.monotonic() - t0
            async with session.get(f"http://127.0.0.1:{port}/count") as resp:
                after = (await resp.json())["count"]
        await workers.call_all("close")
        return float((after - before) / elapsed)
    finally:
        bare.terminate()
        bare.wait(timeout=10)


async def bare_reference() -> float:
    """The machine's speed reference as every benchmark prints it: the bare loop's
    frames/s with 2,000 sockets from three load-generator processes, over 8 s."""
    workers = Workers(3)
    try:
        return await bare_ceiling(workers, 2000, 8.0)
    finally:
        workers.stop()


def parser(doc: str | None) -> argparse.ArgumentParser:
    """The arguments every socket benchmark takes: its scratch database and Redis db."""
    p = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--database-url",
        type=database_url,
        default=os.environ.get("ZENDO_DATABASE_URL", "postgresql:///zendo_test_gateway"),
        help="a scratch database (created if missing; its users TRUNCATEd)",
    )
    p.add_argument(
        "--redis-url", default=os.environ.get("ZENDO_REDIS_URL", "redis://127.0.0.1:6379/4")
    )
    return p


def parse() -> argparse.Namespace:
    p = parser(__doc__)
    p.add_argument("--sockets", type=positive_int, default=15000)
    p.add_argument("--active", type=positive_int, default=10000)
    p.add_argument("--duration", type=positive_float, default=20.0)
    p.add_argument("--flat-sockets", type=positive_int, default=2000)
    p.add_argument("--flat-s", type=positive_float, default=8.0)
    p.add_argument("--workers", type=positive_int, default=3)
    args = p.parse_args()
    if args.active > args.sockets:
        p.error(f"--active ({args.active}) cannot exceed --sockets ({args.sockets})")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse()))
