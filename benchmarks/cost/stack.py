"""The processes compared, all up at once: `zendo serve` on its database, the bare
handlers on theirs, the bare receive loop; the request drivers set up against the two
HTTP servers and the bare loop's sockets connected."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from benchmarks.cost.clients import Helpers
from benchmarks.cost.constants import SECRET
from benchmarks.cost.meter import Meter
from benchmarks.cost.probes import wait_http, wait_workers
from benchmarks.cost.processes import start_module, start_server, stop_process
from benchmarks.cost.report import Clock
from benchmarks.cost.seed import Seeded
from benchmarks.scratch_db import database_name
from tests.ports import free_port


@dataclass(frozen=True)
class Side:
    """One process tree under test: what the meter watches while it works."""

    pid: int
    port: int
    database: str | None = None  # the bare loop has none

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def watch(self, meter: Meter) -> None:
        meter.watch(self.pid, self.database)


@dataclass(frozen=True)
class Stack:
    zendo: Side
    bare_http: Side
    bare_ws: Side
    server_processes: int


@contextlib.asynccontextmanager
async def stack(
    args: argparse.Namespace, seeded: Seeded, helpers: Helpers, clock: Clock
) -> AsyncIterator[Stack]:
    """Starts the three servers and sets the drivers up; yields them; stops them all."""
    zendo_port, http_port, ws_port = free_port(), free_port(), free_port()
    procs = [
        start_server(args, zendo_port, ping_rate=max(2.0, 2 * args.hz)),
        start_module("benchmarks.bare_handler", str(http_port), args.bare_database_url, SECRET),
        start_module("benchmarks.bare_ws", str(ws_port)),
    ]
    try:
        zendo, bare_http, bare_ws = (
            Side(procs[0].pid, zendo_port, database_name(args.database_url)),
            Side(procs[1].pid, http_port, database_name(args.bare_database_url)),
            Side(procs[2].pid, ws_port),
        )
        await wait_http(f"{zendo.base}/healthz")
        await wait_http(f"{bare_http.base}/healthz")
        await wait_http(f"{bare_ws.base}/count")
        n_workers = await wait_workers(zendo.pid, zendo_port, args.server_workers)
        setup = await helpers.real_driver.call(
            "setup", zendo.base, seeded.job_artisans, seeded.clients, True
        )
        await helpers.bare_driver.call(
            "setup", bare_http.base, seeded.job_artisans, seeded.clients, False
        )
        await helpers.real_driver.call("fixes")
        await helpers.bare_workers.connect(f"{bare_ws.base}/ws", [None] * args.sockets)
        clock.say(
            f"up: zendo serve ({n_workers} worker process(es), driver holds {setup['sockets']} "
            f"sockets), the bare handlers, the bare loop ({args.sockets} sockets)"
        )
        yield Stack(zendo, bare_http, bare_ws, n_workers)
    finally:
        for proc in procs:
            stop_process(proc)
