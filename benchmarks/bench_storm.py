"""Reconnect storm (not a test): a city's artisan apps reconnecting at once.

    .venv/bin/python -m benchmarks.bench_storm [--sockets 10000] [--rate 1000]

Seeds verified artisans into the database (TRUNCATEs it: use a scratch one), starts
`zendo serve` with its own worker count, as `make run` (or `--server-workers`), then:
  1. opens `--sockets` artisan sockets at `--rate` handshakes/s from load-generator
     processes; a handshake refused for load (503 + Retry-After) is retried by the
     README's reconnect rule (benchmarks/reconnect.py); once welcomed each says `presence`
     ONLINE, as an artisan's app does. Reports how many were served
     within 60 s, the time from upgrade to `hello` (target: within 1 s for every
     admitted socket) as the generators see it and as the server does
     (`zendo_ws_hello_seconds`), the generators' own loop lag, the time from the
     socket's slot to being served, and refusals;
  2. then every socket sends one fix per second for `--duration` s: accepted fixes/s and
     the fix -> visible lag of probe sockets (through /admin/artisans/{id}/live and an
     ArtisanIndex mirror here), with the server's and Redis's CPU per accepted fix; and
     meanwhile a client creates a job every 0.2 s exactly where one of ten offer probes
     stands (so it is that probe's first offer): POST sent -> `offer` frame on the probe's
     socket (create -> first offer; an offer that has not come within 5 s is counted as
     missed), then cancels it; beside it, the server's own first-offer histogram and this
     process's loop lag (part of every time it measures);
  3. every socket closes at once (a network blip, a deploy, the end of a load test): the
     server's CPU per closed socket, and the latency of a request sent every 10 ms
     meanwhile (a status change waiting behind thousands of closes is what users see);
  4. the bare aiohttp receive loop's flat-out frames/s (the machine's speed reference).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import time
from typing import Any

import aiohttp
import asyncpg
from redis.asyncio import Redis

from benchmarks import metrics_diff, reconnect
from benchmarks.arguments import positive_float, positive_int
from benchmarks.bench_gateway import (
    Workers,
    bare_ceiling,
    metric,
    parser,
    pct,
    probe_lag,
    redis_pid,
    seed,
    start_gateway,
    token,
)
from benchmarks.cost.meter import tree_cpu_s
from gateway.mirror import follow, new_index
from tests.gateway.processes import wait_healthy
from tests.ports import free_port

N_PROBES = 20
N_OFFER_PROBES = 10
OFFER_SPECIALTY = "APPLIANCE_REPAIR"
OFFER_PROBE_LON = 2.35


async def offer_probes(port: int, dsn: str, seconds: float) -> tuple[list[float], int, int]:
    """Seconds from each POST /interventions to the `offer` frame on the probe's socket,
    how many creations were shed (503: the client waits by the README's rule, as any
    client would, and tries again), and how many offers did not reach the probe within
    5 s."""
    conn = await asyncpg.connect(dsn)
    try:
        client = await conn.fetchval(
            "INSERT INTO users (email, password_hash, role, is_verified) "
            "VALUES ('storm-client@example.com', 'x', 'CLIENT', true) RETURNING id"
        )
        ids = await conn.fetch(
            """INSERT INTO users (email, password_hash, role, is_verified)
               SELECT 'storm-probe-' || g || '@example.com', 'x', 'ARTISAN', true
               FROM generate_series(1, $1) g RETURNING id""",
            N_OFFER_PROBES,
        )
        probes = [r["id"] for r in ids]
        await conn.execute(
            """INSERT INTO artisans (user_id, status, level, specialty, rating)
               SELECT id, 'VERIFIED', 'STANDARD', $2, 4.5 FROM unnest($1::uuid[]) AS t(id)""",
            probes,
            OFFER_SPECIALTY,
        )
    finally:
        await conn.close()
    client_headers = {"Authorization": f"Bearer {token(client, 'CLIENT')}"}
    base = f"http://127.0.0.1:{port}"
    delays: list[float] = []
    shed = in_a_row = missed = 0
    async with aiohttp.ClientSession() as session:
        sockets = []
        for k, artisan in enumerate(probes):
            ws = await session.ws_connect(
                f"{base}/ws", headers={"Authorization": f"Bearer {token(artisan, 'ARTISAN')}"}
            )
            await ws.receive()  # hello
            # Off the meridian the fix-lag probes walk along (bench_gateway.probe_lag):
            # one of them standing on a probe's spot would take its job (a tie at 0 km).
            lat, lon = 48.82 + k * 0.005, OFFER_PROBE_LON
            await ws.send_str(
                f'{{"type":"location","lat":{lat},"lon":{lon},"ts":{int(time.time() * 1000)}}}'
            )
            sockets.append((ws, lat, lon))
        await asyncio.sleep(1.0)  # their first fixes reach the index
        deadline = time.monotonic() + seconds
        k = 0
        while time.monotonic() < deadline:
            ws, lat, lon = sockets[k % len(sockets)]
            k += 1
            sent = time.perf_counter()
            async with session.post(
                f"{base}/interventions",
                json={"specialty": OFFER_SPECIALTY, "lat": lat, "lon": lon},
                headers=client_headers,
            ) as resp:
                job = await resp.json()
                hint = reconnect.hint_from_headers(dict(resp.headers))
            if resp.status == 503:
                await asyncio.sleep(reconnect.delay_s(in_a_row, hint))
                shed, in_a_row = shed + 1, in_a_row + 1
                continue
            in_a_row = 0
            if resp.status != 201:
                raise RuntimeError(f"probe job refused: {resp.status} {job}")
            try:
                while True:
                    msg = await ws.receive(timeout=5)
                    if msg.type is aiohttp.WSMsgType.TEXT and '"type":"offer"' in msg.data:
                        delays.append(time.perf_counter() - sent)
                        break
            except TimeoutError:
                missed += 1
            async with session.post(
                f"{base}/interventions/{job['id']}/cancel", headers=client_headers
            ) as resp:
                await resp.read()
            await asyncio.sleep(0.2)
        for ws, _lat, _lon in sockets:
            await ws.close()
    return delays, shed, missed


async def storm(workers: Workers, url: str, tokens: list[str], rate: float) -> dict[str, Any]:
    n = len(workers.pipes)
    t0 = time.monotonic()
    results = await workers.call_each([("storm", url, tokens[i::n], rate / n) for i in range(n)])
    hello = [x for r in results for x in r["hello_s"]]
    served = [x for r in results for x in r["served_s"]]
    lag = [x for r in results for x in r["loop_lag_s"]]
    return {
        "sockets": len(tokens),
        "served": len(served),
        "served_within_60s": sum(1 for s in served if s <= 60.0),
        "elapsed_s": time.monotonic() - t0,
        "refused": sum(r["refused"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "failed": sum(r["failed"] for r in results),
        "hello_ms": (pct(hello, 0.5), pct(hello, 0.99), max(hello, default=0) * 1000),
        "hello_over_1s": sum(1 for h in hello if h > 1.0),
        "served_ms": (pct(served, 0.5), pct(served, 0.99), max(served, default=0) * 1000),
        # the generators' own lateness, part of every time they measure
        "generator_lag_ms": (pct(lag, 0.5), pct(lag, 0.99), max(lag, default=0) * 1000),
    }


async def loop_lag(out: list[float]) -> None:
    """This process's own lateness (s), every 10 ms, until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        planned = loop.time() + 0.01
        await asyncio.sleep(0.01)
        out.append(loop.time() - planned)


async def request_probe(port: int, stop: asyncio.Event) -> list[float]:
    """Latencies (s) of GET /specialties, one every 10 ms (through every middleware),
    until `stop` is set."""
    out: list[float] = []
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            sent = time.perf_counter()
            async with session.get(f"http://127.0.0.1:{port}/specialties") as resp:
                await resp.read()
            out.append(time.perf_counter() - sent)
            await asyncio.sleep(0.01)
    return out


async def mass_close(workers: Workers, port: int, server_pid: int, sockets: int) -> dict[str, Any]:
    stop = asyncio.Event()
    probe = asyncio.create_task(request_probe(port, stop))
    await asyncio.sleep(0.5)
    cpu0 = tree_cpu_s(server_pid)
    await workers.call_all("close")
    await asyncio.sleep(2.0)  # the departures and socket-cap flushes
    cpu = tree_cpu_s(server_pid) - cpu0
    stop.set()
    latencies = await probe
    return {
        "sockets": sockets,
        "server_cpu_s": cpu,
        "server_cpu_us_per_socket": cpu / max(1, sockets) * 1e6,
        "probe_ms": (pct(latencies, 0.5), pct(latencies, 0.99), max(latencies, default=0) * 1000),
    }


async def scrape(session: aiohttp.ClientSession, port: int) -> metrics_diff.Series:
    async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
        return metrics_diff.buckets_of(await resp.text())


async def main(args: argparse.Namespace) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    report: dict[str, Any] = {"load_before": os.getloadavg()}
    artisan_ids, admin_id = await seed(args.database_url, args.redis_url, args.sockets + N_PROBES)
    probes = [(a, token(a, "ARTISAN")) for a in artisan_ids[:N_PROBES]]
    tokens = [token(a, "ARTISAN") for a in artisan_ids[N_PROBES:]]
    admin_token = token(admin_id, "ADMIN")
    index = await asyncio.to_thread(new_index)
    mirror_redis = Redis.from_url(args.redis_url, decode_responses=True)
    mirror_task = asyncio.create_task(follow(mirror_redis, index))
    port = free_port()
    server = start_gateway(args, port, args.server_workers)
    workers = Workers(args.workers)
    try:
        await wait_healthy(port, timeout_s=60)
        await asyncio.sleep(1.0)
        rpid = await redis_pid(args.redis_url)
        cpu0 = tree_cpu_s(server.pid)
        async with aiohttp.ClientSession() as session:
            before_storm = await scrape(session, port)
        report["storm"] = await storm(workers, f"http://127.0.0.1:{port}/ws", tokens, args.rate)
        report["storm"]["server_cpu_s"] = tree_cpu_s(server.pid) - cpu0
        print(f"storm: {report['storm']}", flush=True)
        async with aiohttp.ClientSession() as session:
            after_storm = await scrape(session, port)
        for line in metrics_diff.report(before_storm, after_storm):
            if "ws_hello" in line or "loop_lag" in line:  # the server's view of the storm
                print("server (storm):", line, flush=True)

        async with aiohttp.ClientSession() as session:
            active = report["storm"]["served"] // args.workers
            before = await metric(session, port, "zendo_pings_accepted_total")
            scrape0 = await scrape(session, port)
            c0 = (tree_cpu_s(server.pid), tree_cpu_s(rpid) if rpid else 0.0)
            t0 = time.monotonic()
            rate_task = asyncio.create_task(workers.call_all("rate", 1.0, args.duration, active))
            await asyncio.sleep(3.0)
            own_lag: list[float] = []
            lag_task = asyncio.create_task(loop_lag(own_lag))
            lags, (offers, offers_shed, offers_missed) = await asyncio.gather(
                probe_lag(port, probes, admin_token, index, args.duration - 6),
                offer_probes(port, args.database_url, args.duration - 8),
            )
            lag_task.cancel()
            await asyncio.gather(lag_task, return_exceptions=True)
            await rate_task
            elapsed = time.monotonic() - t0
            after = await metric(session, port, "zendo_pings_accepted_total")
            c1 = (tree_cpu_s(server.pid), tree_cpu_s(rpid) if rpid else 0.0)
            scrape1 = await scrape(session, port)
        for line in metrics_diff.report(scrape0, scrape1):
            if "loop_lag" in line or "gc_pause" in line or "first_offer" in line:
                print("server:", line, flush=True)
        accepted = after - before
        report["fixes"] = {
            "accepted_per_s": accepted / elapsed,
            "lag_live_ms": (pct(lags[0], 0.5), pct(lags[0], 0.99), len(lags[0])),
            "lag_index_ms": (pct(lags[1], 0.5), pct(lags[1], 0.99), len(lags[1])),
            "first_offer_ms": (pct(offers, 0.5), pct(offers, 0.99), len(offers)),
            "probe_jobs_shed": offers_shed,
            "probe_offers_missed": offers_missed,
            "bench_loop_lag_ms": (
                pct(own_lag, 0.5),
                pct(own_lag, 0.99),
                max(own_lag, default=0) * 1000,
            ),
            "server_cpu_us_per_fix": (c1[0] - c0[0]) / max(1.0, accepted) * 1e6,
            "redis_cpu_us_per_fix": (c1[1] - c0[1]) / max(1.0, accepted) * 1e6,
        }
        print(f"1 Hz: {report['fixes']}", flush=True)
        async with aiohttp.ClientSession() as session:
            before_close = await scrape(session, port)
        report["close"] = await mass_close(workers, port, server.pid, report["storm"]["served"])
        print(f"mass close: {report['close']}", flush=True)
        async with aiohttp.ClientSession() as session:
            after_close = await scrape(session, port)
        for line in metrics_diff.report(before_close, after_close):
            if "loop_lag" in line or "gc_pause" in line:  # the server's view of the close
                print("server (close):", line, flush=True)
    finally:
        workers.stop()
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        mirror_task.cancel()
        await asyncio.gather(mirror_task, return_exceptions=True)
        await mirror_redis.aclose()
    workers = Workers(args.workers)
    try:
        report["bare_frames_per_s"] = await bare_ceiling(workers, 2000, 8.0)
    finally:
        workers.stop()
    report["load_after"] = os.getloadavg()
    print(f"speed reference (bare aiohttp loop): {report['bare_frames_per_s']:.0f} frames/s")
    print(report, flush=True)


def parse() -> argparse.Namespace:
    p = parser(__doc__)
    p.add_argument("--sockets", type=positive_int, default=10000)
    p.add_argument("--rate", type=positive_float, default=1000.0)
    p.add_argument("--duration", type=positive_float, default=20.0)
    p.add_argument("--workers", type=positive_int, default=3, help="load-generator processes")
    p.add_argument(
        "--server-workers",
        type=positive_int,
        help="`zendo serve` processes (default: the server's own)",
    )
    return p.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
