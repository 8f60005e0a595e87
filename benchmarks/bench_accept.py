"""New connections against a busy server: uvloop's own listener vs MultiAcceptSite.

    .venv/bin/python -m benchmarks.bench_accept [--connections 2000] [--busy-ms 5]

Each run starts a server process (uvloop, one aiohttp GET route) whose loop is kept
busy: a callback burns `--busy-ms` of CPU every loop turn, as a loaded server's turns
take 5-10 ms. A client process then opens `--connections` connections at once and
sends one GET on each. Printed: how long until every connection had its answer, the
connect-to-answer latency (p50/p99) and the ratio of the two sites. The baseline is
what aiohttp's `TCPSite` gives on uvloop (libuv accepts one connection per loop turn).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time

import uvloop
from aiohttp import web

from benchmarks.arguments import non_negative_float, positive_int
from benchmarks.children import die_with_parent
from zendo.system.listener import MultiAcceptSite


async def _serve(site_kind: str, busy_ms: float) -> None:
    app = web.Application()

    async def ok(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/", ok)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site: web.TCPSite | MultiAcceptSite
    if site_kind == "tcp":
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    else:
        site = MultiAcceptSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    port = site.port
    loop = asyncio.get_running_loop()

    def burn() -> None:
        end = time.perf_counter() + busy_ms / 1000
        while time.perf_counter() < end:
            pass
        loop.call_later(0, burn)  # once per loop turn, like a loaded server's work

    if busy_ms > 0:
        loop.call_soon(burn)
    print(port, flush=True)
    await asyncio.Event().wait()


async def _one(port: int) -> float:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
    data = b""
    while b"\r\n\r\nok" not in data:
        chunk = await reader.read(4096)
        if not chunk:
            raise RuntimeError(f"closed after {data!r}")
        data += chunk
    elapsed = time.perf_counter() - started
    writer.close()
    return elapsed


async def _storm(port: int, connections: int) -> tuple[float, list[float]]:
    started = time.perf_counter()
    latencies = await asyncio.gather(*(_one(port) for _ in range(connections)))
    return time.perf_counter() - started, sorted(latencies)


def _measure(site_kind: str, connections: int, busy_ms: float) -> tuple[float, float, float]:
    command = [sys.executable, "-m", "benchmarks.bench_accept", "--serve", site_kind]
    server = subprocess.Popen(
        [*command, "--busy-ms", str(busy_ms)],
        stdout=subprocess.PIPE,
        preexec_fn=die_with_parent,  # started from the bench's main thread
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())  # the server binds port 0 and says which
        total, lat = uvloop.run(_storm(port, connections))
    finally:
        server.terminate()
        server.wait(10)
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    return total, p50, p99


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=positive_int, default=2000)
    parser.add_argument("--busy-ms", type=non_negative_float, default=5.0)
    parser.add_argument("--serve", choices=("tcp", "multi"))
    args = parser.parse_args()
    if args.serve:
        uvloop.run(_serve(args.serve, args.busy_ms))
        return
    print(f"{args.connections} connections at once, server loop busy {args.busy_ms} ms/turn")
    results = {}
    for kind, label in (("tcp", "TCPSite (uvloop listener)"), ("multi", "MultiAcceptSite")):
        total, p50, p99 = _measure(kind, args.connections, args.busy_ms)
        results[kind] = total
        print(
            f"{label:28s} all answered in {total:6.2f} s ({args.connections / total:7.0f} conn/s)"
            f"  connect->answer p50 {p50 * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms"
        )
    print(
        f"ratio (time to answer all, TCPSite / MultiAcceptSite): {results['tcp'] / results['multi']:.1f}x"
    )


if __name__ == "__main__":
    main()
