"""CPU accounting from /proc: per-process run time, the Meter's snapshots and the
deltas of one measured window."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from redis.asyncio import Redis


def cpu_ns(pid: int) -> int | None:
    """Run time of every live thread of `pid` (schedstat, ns); None once it is gone."""
    sched = cpu_and_slices(pid)
    return None if sched is None else sched[0]


def cpu_and_slices(pid: int) -> tuple[int, int] | None:
    """`cpu_ns`, and how many times its threads were put on a CPU (schedstat's time
    slices: each wake-up from a wait is one, as is each resumption after preemption).
    On a VM where a vCPU halts when idle, a process that sleeps between the steps of
    a request pays for each wake-up: the slices count them. None once it is gone."""
    total = slices = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as fh:
                run_ns, _waited_ns, runs = fh.read().split()[:3]
                total += int(run_ns)
                slices += int(runs)
        except OSError:  # no schedstat (or the thread just ended): the tick counters
            try:
                fields = Path(f"/proc/{pid}/task/{task}/stat").read_text().rsplit(")", 1)[1]
                parts = fields.split()
                ticks = int(parts[11]) + int(parts[12])
                total += ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
            except OSError:
                pass
    return total, slices


def process_tree(root: int) -> list[int]:
    """`root` and its descendants (a `zendo serve --workers N` supervisor and workers)."""
    pids, stack = [], [root]
    while stack:
        pid = stack.pop()
        pids.append(pid)
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as fh:
                    stack.extend(int(c) for c in fh.read().split())
        except OSError:
            pass
    return pids


def tree_cpu_s(root: int) -> float:
    """CPU seconds of `root` and its descendants' live threads (a server pool, locust)."""
    return sum(cpu_ns(pid) or 0 for pid in process_tree(root)) / 1e9


def _cpu_of(pids: list[int]) -> dict[int, int]:
    return {pid: ns for pid in pids if (ns := cpu_ns(pid)) is not None}


def _sched_of(pids: list[int]) -> tuple[dict[int, int], dict[int, int]]:
    """(CPU ns, time slices) of each live process of `pids`."""
    cpu, slices = {}, {}
    for pid in pids:
        if (sched := cpu_and_slices(pid)) is not None:
            cpu[pid], slices[pid] = sched
    return cpu, slices


def _grown(a: dict[int, int], b: dict[int, int], scale: float = 1e9) -> float:
    """CPU seconds (or, scale 1, counts) from a to b; a process that appeared in
    between counts from zero."""
    return sum(ns - a.get(pid, 0) for pid, ns in b.items()) / scale


@dataclass
class Snap:
    at: float
    server: dict[int, int]
    redis: int
    pg: dict[int, int]
    pg_bg: int
    redis_cmds: int = 0
    redis_conns: int = 0
    redis_usec: dict[str, int] = field(default_factory=dict)
    server_slices: dict[int, int] = field(default_factory=dict)


@dataclass
class Delta:
    """CPU seconds of each component over one window of `elapsed` wall seconds."""

    elapsed: float
    server: float
    redis: float
    pg: float
    pg_bg: float
    redis_cmds: int = 0  # commands Redis processed (the meter's own INFO excluded)
    redis_conns: int = 0  # connections Redis accepted
    # Redis's own time inside each command (INFO commandstats, µs): where its CPU goes,
    # minus the network reads, parsing and replies the process CPU also counts.
    redis_usec: dict[str, int] = field(default_factory=dict)
    # Times the server's threads were put on a CPU (`cpu_and_slices`): a count, not seconds.
    server_slices: float = 0.0

    def rates(self) -> dict[str, float]:
        parts = ("server", "redis", "pg", "pg_bg", "server_slices")
        return {k: getattr(self, k) / self.elapsed for k in parts}

    def __add__(self, other: Delta) -> Delta:
        """Two windows of the same work as one (the pieces of an alternated window)."""
        usec = dict(self.redis_usec)
        for cmd, grown in other.redis_usec.items():
            usec[cmd] = usec.get(cmd, 0) + grown
        return Delta(
            elapsed=self.elapsed + other.elapsed,
            server=self.server + other.server,
            redis=self.redis + other.redis,
            pg=self.pg + other.pg,
            pg_bg=self.pg_bg + other.pg_bg,
            redis_cmds=self.redis_cmds + other.redis_cmds,
            redis_conns=self.redis_conns + other.redis_conns,
            redis_usec=usec,
            server_slices=self.server_slices + other.server_slices,
        )


class Meter:
    """Snapshots of the CPU of the watched server (its process tree), Redis, and the
    client backends of the watched database (plus the cluster's shared WAL writer,
    background writer and checkpointer, reported apart)."""

    def __init__(self, conn: asyncpg.Connection, redis: Redis, redis_pid: int) -> None:
        self.conn = conn
        self.redis = redis
        self.redis_pid = redis_pid
        self.server_pid = 0
        self.database: str | None = ""  # "": the meter connection's own; None: none

    def watch(self, server_pid: int, database: str | None) -> None:
        """Meter this server process tree and the backends of this database (None: no
        database) from now on."""
        self.server_pid, self.database = server_pid, database

    async def _pg_pids(self) -> tuple[list[int], list[int]]:
        rows = await self.conn.fetch(
            """SELECT pid, backend_type,
                      datname = coalesce(nullif($1, ''), current_database()) AS ours
               FROM pg_stat_activity WHERE pid <> pg_backend_pid()""",
            self.database or "",
        )
        backends = [
            r["pid"]
            for r in rows
            if r["ours"] and r["backend_type"] == "client backend" and self.database is not None
        ]
        shared = [
            r["pid"]
            for r in rows
            if r["backend_type"] in ("walwriter", "background writer", "checkpointer")
        ]
        return backends, shared

    async def snap(self) -> Snap:
        backends, shared = await self._pg_pids()
        stats = await self.redis.info("stats")
        commands = await self.redis.info("commandstats")
        server, server_slices = (
            _sched_of(process_tree(self.server_pid)) if self.server_pid else ({}, {})
        )
        return Snap(
            redis_usec={
                name.removeprefix("cmdstat_"): int(row["usec"]) for name, row in commands.items()
            },
            redis_cmds=int(stats["total_commands_processed"]),
            redis_conns=int(stats["total_connections_received"]),
            at=time.monotonic(),
            server=server,
            server_slices=server_slices,
            redis=cpu_ns(self.redis_pid) or 0,
            pg=_cpu_of(backends),
            pg_bg=sum(cpu_ns(p) or 0 for p in shared),
        )

    @staticmethod
    def delta(a: Snap, b: Snap) -> Delta:
        return Delta(
            elapsed=b.at - a.at,
            server=_grown(a.server, b.server),
            redis=(b.redis - a.redis) / 1e9,
            pg=_grown(a.pg, b.pg),
            pg_bg=(b.pg_bg - a.pg_bg) / 1e9,
            redis_cmds=b.redis_cmds - a.redis_cmds - 1,
            redis_conns=b.redis_conns - a.redis_conns,
            redis_usec={
                cmd: grown
                for cmd, usec in b.redis_usec.items()
                if (grown := usec - a.redis_usec.get(cmd, 0)) > 0
            },
            server_slices=_grown(a.server_slices, b.server_slices, scale=1),
        )


def per_unit(delta: Delta, idle: dict[str, float], units: float, part: str) -> tuple[float, float]:
    """(net, gross) µs of CPU per unit for one component."""
    if units <= 0:
        return float("nan"), float("nan")
    used = getattr(delta, part)
    gross = used / units * 1e6
    net = (used - idle.get(part, 0.0) * delta.elapsed) / units * 1e6
    return net, gross


def slices_per_unit(delta: Delta, idle: dict[str, float], units: float) -> float:
    """Times the server was put on a CPU per unit, net of its idle rate."""
    if units <= 0:
        return float("nan")
    return (delta.server_slices - idle.get("server_slices", 0.0) * delta.elapsed) / units


async def measure(meter: Meter, coro: Any, settle_s: float = 0.0) -> tuple[Any, Delta]:
    before = await meter.snap()
    result = await coro
    if settle_s:
        await asyncio.sleep(settle_s)
    return result, Meter.delta(before, await meter.snap())


async def idle(meter: Meter, seconds: float) -> dict[str, float]:
    _none, delta = await measure(meter, asyncio.sleep(seconds))
    return delta.rates()
