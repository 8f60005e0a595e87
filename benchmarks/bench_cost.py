"""Cost model (not a test): CPU per unit of work, against bare baselines, in one run.

    .venv/bin/python -m benchmarks.bench_cost [--quick] [--database-url URL] [--redis-url URL]

CPU is read from /proc (the `schedstat` run time of every thread, in ns), never from
wall time: per accepted fix, per HTTP request by route and per dispatched job, for the
server, Redis and the PostgreSQL backends of the database used. Every unit cost is given
gross (the window's CPU / units) and net of the idle rate of the same processes measured
just before (what one more unit costs); targets are judged on the net figures.

One run, in order (it TRUNCATEs the database and FLUSHes the Redis db: use scratch ones):
  1. seeds verified artisans and clients, starts one `zendo serve` and a driver process
     (aiohttp) holding artisan and client sockets;
  2. requests: each route alone in its own window at a steady rate (login, me, create,
     get, accept, the four status changes); then M whole jobs (create -> offer on the
     artisan's socket -> `offer.accept` over the socket -> four status changes);
  3. fixes: N artisan sockets (benchmarks/loadgen.py processes) at a steady rate;
  4. baselines: one pipelined GEOADD per fix from Python at the same rate and flush
     cadence (Redis CPU per fix); the bare aiohttp receive loop (benchmarks/bare_ws.py)
     with the same driver and rate (CPU per frame), then flat out (the speed
     reference); the bare aiohttp + asyncpg handlers (benchmarks/bare_handler.py)
     driven exactly as the server's routes (CPU per request).
Prints one table, capacity estimates per core, and a final JSON line with every number.

The server is `zendo serve` as deployed (its own worker count, unless --server-workers):
its CPU is that of its whole process tree. Logins use bcrypt cost 10 (the lowest the
server accepts) and a login rate limit raised out of the way (every login comes from
127.0.0.1); offers last 600 s so none expires between two windows. The request and job
artisans are PLUMBERs near the centre of Paris; the fix-phase ones have the other
specialties, so no job is ever offered to a socket that does not answer.

Redis: by default a private `redis-server` on a free port (others' work on a shared
Redis would count as ours); `--redis-url` uses that one instead (pid from INFO server).
`--profile DIR` also samples the server with py-spy during the fix and request windows
(it perturbs the CPU figures of that run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from core.gateway_config import GatewayConfig

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-cost-secret-" + "x" * 40
PASSWORD = "bench-cost-password-1"
BCRYPT_ROUNDS = 10
CENTER = (48.8566, 2.3522)
FLUSH_LINGER_S = GatewayConfig().flush_linger_s  # the server's flush cadence
JOB_SPECIALTY = "PLUMBER"  # request/job artisans; the fix-phase artisans have the others
FIX_SPECIALTIES = ("ELECTRICIAN", "LOCKSMITH", "HEATING", "GLAZIER", "APPLIANCE_REPAIR")
STATUSES = ("EN_ROUTE", "ARRIVED", "IN_PROGRESS", "COMPLETED")
ROUTES = (
    ("login", "POST /auth/login"),
    ("me", "GET /auth/me"),
    ("create", "POST /interventions"),
    ("get", "GET /interventions/{id}"),
    ("accept", "POST /offers/{id}/accept"),
    *((s, f"POST /interventions/{{id}}/status {s}") for s in STATUSES),
)
HOT_ROUTES = tuple(name for name, _label in ROUTES if name != "login")
TARGETS = {"redis_fix": 3.0, "server_fix": 3.0, "route": 2.5}
KEEP_TABLES = {"schema_migrations", "specialty_prices", "spatial_ref_sys"}


# ---- CPU accounting ---------------------------------------------------------------------


def cpu_ns(pid: int) -> int | None:
    """Run time of every live thread of `pid` (schedstat, ns); None once it is gone."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as fh:
                total += int(fh.read().split()[0])
        except OSError:  # no schedstat (or the thread just ended): the tick counters
            try:
                fields = Path(f"/proc/{pid}/task/{task}/stat").read_text().rsplit(")", 1)[1]
                parts = fields.split()
                ticks = int(parts[11]) + int(parts[12])
                total += ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
            except OSError:
                pass
    return total


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


def _cpu_of(pids: list[int]) -> dict[int, int]:
    return {pid: ns for pid in pids if (ns := cpu_ns(pid)) is not None}


def _grown(a: dict[int, int], b: dict[int, int]) -> float:
    """CPU seconds from a to b; a process that appeared in between counts from zero."""
    return sum(ns - a.get(pid, 0) for pid, ns in b.items()) / 1e9


@dataclass
class Snap:
    at: float
    server: dict[int, int]
    redis: int
    pg: dict[int, int]
    pg_bg: int
    redis_cmds: int = 0
    redis_conns: int = 0


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

    def rates(self) -> dict[str, float]:
        return {k: getattr(self, k) / self.elapsed for k in ("server", "redis", "pg", "pg_bg")}


class Meter:
    """Snapshots of the CPU of the server (its process tree), Redis, and the client
    backends of the benchmark's database (plus the cluster's shared WAL writer, background
    writer and checkpointer, reported apart)."""

    def __init__(self, conn: asyncpg.Connection, redis: Redis, redis_pid: int) -> None:
        self.conn = conn
        self.redis = redis
        self.redis_pid = redis_pid
        self.server_pid = 0

    async def _pg_pids(self) -> tuple[list[int], list[int]]:
        rows = await self.conn.fetch(
            """SELECT pid, backend_type, datname = current_database() AS ours
               FROM pg_stat_activity WHERE pid <> pg_backend_pid()"""
        )
        backends = [r["pid"] for r in rows if r["ours"] and r["backend_type"] == "client backend"]
        shared = [
            r["pid"]
            for r in rows
            if r["backend_type"] in ("walwriter", "background writer", "checkpointer")
        ]
        return backends, shared

    async def snap(self) -> Snap:
        backends, shared = await self._pg_pids()
        stats = await self.redis.info("stats")
        return Snap(
            redis_cmds=int(stats["total_commands_processed"]),
            redis_conns=int(stats["total_connections_received"]),
            at=time.monotonic(),
            server=_cpu_of(process_tree(self.server_pid)) if self.server_pid else {},
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
        )


def per_unit(delta: Delta, idle: dict[str, float], units: float, part: str) -> tuple[float, float]:
    """(net, gross) µs of CPU per unit for one component."""
    if units <= 0:
        return float("nan"), float("nan")
    used = getattr(delta, part)
    gross = used / units * 1e6
    net = (used - idle.get(part, 0.0) * delta.elapsed) / units * 1e6
    return net, gross


# ---- seeding ------------------------------------------------------------------------------


@dataclass
class Seeded:
    fix_artisans: list[dict[str, Any]]
    job_artisans: list[dict[str, Any]]
    clients: list[dict[str, Any]]


async def seed(dsn: str, redis_url: str, n_fix: int, n_job: int, n_clients: int) -> Seeded:
    """TRUNCATE, then verified artisans and clients through `zendo seed`'s COPY path."""
    from core.tokens import issue_access_token
    from dispatch.auth import passwords
    from dispatch.auth.commands import _copy_users, random_point_in_disc

    rng = random.Random(7)
    password_hash = await passwords.hash_password(PASSWORD, BCRYPT_ROUNDS)
    users: list[tuple[uuid.UUID, str, str, str, bool]] = []
    artisan_rows: list[tuple[uuid.UUID, str, str, float, float, float]] = []
    out: dict[str, list[dict[str, Any]]] = {"fix": [], "job": [], "client": []}
    groups = (("fix", n_fix, 12.0), ("job", n_job, 3.0), ("client", n_clients, 0.0))
    for group, n, radius_km in groups:
        for i in range(n):
            user_id = uuid.uuid4()
            role = "CLIENT" if group == "client" else "ARTISAN"
            email = f"cost-{group}{i}@bench.zendo.test"
            users.append((user_id, email, password_hash, role, True))
            entry: dict[str, Any] = {"id": str(user_id), "email": email}
            if role == "ARTISAN":
                specialty = JOB_SPECIALTY if group == "job" else FIX_SPECIALTIES[i % 5]
                lat, lon = random_point_in_disc(rng, *CENTER, radius_km)
                artisan_rows.append((user_id, specialty, "STANDARD", 4.5, lat, lon))
                entry.update(specialty=specialty, lat=lat, lon=lon)
            entry["token"] = issue_access_token(SECRET, user_id=user_id, role=role, ttl_s=3600)
            out[group].append(entry)
    conn = await asyncpg.connect(dsn)
    try:
        tables = [
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            if r["tablename"] not in KEEP_TABLES
        ]
        await conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        async with conn.transaction():
            await _copy_users(conn, users, artisan_rows)
        await conn.execute("ANALYZE users, artisans")
    finally:
        await conn.close()
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    await redis.aclose()
    return Seeded(out["fix"], out["job"], out["client"])


# ---- the request driver (its own process) --------------------------------------------------


@dataclass
class Job:
    id: str
    client: int
    start_code: str | None
    artisan: int | None = None
    offer_id: str | None = None


@dataclass
class Driver:
    """Drives HTTP routes (and, against the real server, holds artisan and client sockets)."""

    base: str = ""
    artisans: list[dict[str, Any]] = field(default_factory=list)
    clients: list[dict[str, Any]] = field(default_factory=list)
    session: aiohttp.ClientSession | None = None
    sockets: dict[int, aiohttp.ClientWebSocketResponse] = field(default_factory=dict)
    readers: list[asyncio.Task[None]] = field(default_factory=list)
    jobs: dict[str, Job] = field(default_factory=dict)
    job_order: list[str] = field(default_factory=list)
    offers: dict[str, Job] = field(default_factory=dict)  # offer id -> its job
    acked: dict[str, asyncio.Future[int]] = field(default_factory=dict)
    frames: Counter[str] = field(default_factory=Counter)
    auto_accept: bool = False
    positions: dict[int, tuple[float, float]] = field(default_factory=dict)

    async def setup(
        self, base: str, artisans: list[dict[str, Any]], clients: list[dict[str, Any]], ws: bool
    ) -> dict[str, Any]:
        self.base, self.artisans, self.clients = base, artisans, clients
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        if not ws:
            return {"sockets": 0}
        sem = asyncio.Semaphore(100)
        ws_url = base.replace("http", "ws", 1) + "/ws"

        async def open_one(kind: str, i: int, profile: dict[str, Any]) -> None:
            assert self.session is not None
            async with sem:
                sock = await self.session.ws_connect(
                    ws_url, headers={"Authorization": f"Bearer {profile['token']}"}
                )
                await sock.receive(timeout=30)  # hello
            if kind == "artisan":
                self.sockets[i] = sock
                self.readers.append(asyncio.create_task(self._artisan_reader(i, sock)))
            else:
                self.readers.append(asyncio.create_task(self._drain(sock)))

        await asyncio.gather(
            *(open_one("artisan", i, a) for i, a in enumerate(artisans)),
            *(open_one("client", i, c) for i, c in enumerate(clients)),
        )
        return {"sockets": len(self.readers)}

    async def _drain(self, sock: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in sock:
            if msg.type is aiohttp.WSMsgType.TEXT:
                self.frames["client " + json.loads(msg.data)["type"]] += 1

    async def _artisan_reader(self, i: int, sock: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in sock:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            kind = frame["type"]
            self.frames["artisan " + kind] += 1
            if kind == "offer":
                job_id = frame["intervention"]["id"]
                job = self.jobs.setdefault(job_id, Job(job_id, -1, None))
                job.offer_id, job.artisan = frame["offer_id"], i
                self.offers[frame["offer_id"]] = job
                if self.auto_accept:
                    accept = {"type": "offer.accept", "offer_id": frame["offer_id"]}
                    await sock.send_str(json.dumps(accept))
            elif kind == "ack" and frame.get("for") == "offer.accept":
                future = self._acked(self.offers[frame["offer_id"]].id)
                if not future.done():
                    future.set_result(i)
            elif kind == "error":
                self.frames[f"error {frame.get('code')}"] += 1

    def _acked(self, job_id: str) -> asyncio.Future[int]:
        if job_id not in self.acked:
            self.acked[job_id] = asyncio.get_running_loop().create_future()
        return self.acked[job_id]

    async def fixes(self) -> dict[str, Any]:
        """One fix per artisan socket (ONLINE, and a recent fix for the end of a job)."""
        now = int(time.time() * 1000)
        for i, sock in self.sockets.items():
            lat, lon = self.positions.get(i, (self.artisans[i]["lat"], self.artisans[i]["lon"]))
            lat += 0.00001
            self.positions[i] = (lat, lon)
            await sock.send_str(json.dumps({"type": "location", "lat": lat, "lon": lon, "ts": now}))
        return {"sent": len(self.sockets)}

    def _headers(self, profile: dict[str, Any]) -> dict[str, str]:
        # X-User-Id is what the bare handlers read instead of the token; the server
        # ignores it. Both get the same requests.
        return {"Authorization": f"Bearer {profile['token']}", "X-User-Id": profile["id"]}

    async def _call(
        self, method: str, path: str, profile: dict[str, Any] | None, body: Any = None
    ) -> tuple[int, Any]:
        assert self.session is not None
        headers = self._headers(profile) if profile is not None else {}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        async with self.session.request(
            method, self.base + path, data=data, headers=headers
        ) as resp:
            raw = await resp.read()
            return resp.status, (json.loads(raw) if raw else None)

    def _request(self, name: str, i: int) -> tuple[str, str, dict[str, Any] | None, Any] | None:
        clients, artisans = self.clients, self.artisans
        if name == "login":
            accounts = clients + artisans
            who = accounts[i % len(accounts)]
            return "POST", "/auth/login", None, {"email": who["email"], "password": PASSWORD}
        if name == "me":
            return "GET", "/auth/me", clients[i % len(clients)], None
        if name == "create":
            spot = artisans[i % len(artisans)]
            body = {
                "specialty": JOB_SPECIALTY,
                "lat": spot["lat"] + random.uniform(-0.0005, 0.0005),
                "lon": spot["lon"] + random.uniform(-0.0005, 0.0005),
                "description": "bench_cost",
            }
            return "POST", "/interventions", clients[i % len(clients)], body
        jobs = [self.jobs[j] for j in self.job_order]
        if name == "get":
            job = jobs[i % len(jobs)]
            return "GET", f"/interventions/{job.id}", clients[job.client], None
        if name == "accept":
            offered = [j for j in jobs if j.offer_id is not None and j.artisan is not None]
            if i >= len(offered):
                return None
            job = offered[i]
            assert job.artisan is not None
            return "POST", f"/offers/{job.offer_id}/accept", artisans[job.artisan], None
        assigned = [j for j in jobs if j.artisan is not None and j.offer_id is not None]
        if i >= len(assigned):
            return None
        job = assigned[i]
        assert job.artisan is not None
        body = {"status": name}
        if name == "IN_PROGRESS":
            body["start_code"] = job.start_code
        return "POST", f"/interventions/{job.id}/status", artisans[job.artisan], body

    async def route(self, name: str, count: int, rate: float) -> dict[str, Any]:
        """`count` requests of one route at `rate`/s (open loop); waits for every answer."""
        if name == "create":
            self.job_order = []
        statuses: Counter[int] = Counter()

        async def one(i: int) -> None:
            spec = self._request(name, i)
            if spec is None:
                statuses[0] += 1
                return
            method, path, who, body = spec
            try:
                status, payload = await self._call(method, path, who, body)
            except (aiohttp.ClientError, OSError):
                statuses[-1] += 1
                return
            statuses[status] += 1
            if name == "create" and status == 201:
                self._created(payload, i)

        started = time.monotonic()
        tasks = []
        for i in range(count):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        if name == "create":
            await self._wait_offers(2.0)
        ok = sum(n for s, n in statuses.items() if 200 <= s < 300)
        return {"ok": ok, "statuses": dict(statuses), "elapsed": time.monotonic() - started}

    def _created(self, payload: dict[str, Any], i: int) -> None:
        job = self.jobs.setdefault(payload["id"], Job(payload["id"], -1, None))
        job.client, job.start_code = i % len(self.clients), payload.get("start_code")
        if "offer_id" in payload:  # the bare handler answers with it (no sockets)
            job.offer_id = payload["offer_id"]
            ids = {a["id"]: k for k, a in enumerate(self.artisans)}
            job.artisan = ids[payload["offer_artisan_id"]]
            self.offers[job.offer_id] = job
        self.job_order.append(job.id)

    async def _wait_offers(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(self.jobs[j].offer_id for j in self.job_order):
                return
            await asyncio.sleep(0.02)

    async def story(self, count: int, rate: float) -> dict[str, Any]:
        """Whole jobs: create, the offer on a socket, offer.accept on it, four statuses."""
        self.auto_accept = True
        outcomes: Counter[str] = Counter()

        async def one(i: int) -> None:
            spec = self._request("create", i)
            assert spec is not None
            method, path, who, body = spec
            status, payload = await self._call(method, path, who, body)
            if status != 201:
                outcomes[f"create {status}"] += 1
                return
            job_id = payload["id"]
            try:
                artisan = await asyncio.wait_for(asyncio.shield(self._acked(job_id)), 10)
            except TimeoutError:
                outcomes["no accept ack"] += 1
                return
            for target in STATUSES:
                body = {"status": target}
                if target == "IN_PROGRESS":
                    body["start_code"] = payload["start_code"]
                status, _ = await self._call(
                    "POST", f"/interventions/{job_id}/status", self.artisans[artisan], body
                )
                if status != 200:
                    outcomes[f"{target} {status}"] += 1
                    return
            outcomes["completed"] += 1

        started = time.monotonic()
        tasks = []
        for i in range(count):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        self.auto_accept = False
        return {"outcomes": dict(outcomes), "elapsed": time.monotonic() - started}

    async def close(self) -> dict[str, Any]:
        for task in self.readers:
            task.cancel()
        socks = list(self.sockets.values())
        await asyncio.gather(*(s.close() for s in socks), return_exceptions=True)
        if self.session is not None:
            await self.session.close()
        return {"frames": dict(self.frames)}


def run_driver(conn: Connection) -> None:
    import uvloop

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    async def serve() -> None:
        driver = Driver()
        loop = asyncio.get_running_loop()
        while True:
            name, *args = await loop.run_in_executor(None, conn.recv)
            conn.send(await getattr(driver, name)(*args))
            if name == "close":
                return

    uvloop.run(serve())


class DriverProc:
    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self.pipe, child = ctx.Pipe()
        self.proc = ctx.Process(target=run_driver, args=(child,), daemon=True)
        self.proc.start()

    async def call(self, *command: Any) -> Any:
        self.pipe.send(command)
        return await asyncio.get_running_loop().run_in_executor(None, self.pipe.recv)

    def stop(self) -> None:
        self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.kill()


# ---- processes ----------------------------------------------------------------------------


def _raise_nofile() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))


def start_private_redis(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *("redis-server", "--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--maxclients", "20000"),
        ],
        stdout=open("/tmp/zendo-bench-cost-redis.log", "wb"),
        stderr=subprocess.STDOUT,
        preexec_fn=_raise_nofile,
    )


def expected_workers(wanted: int | None) -> int:
    """What `zendo serve` will run: --server-workers, else its own default (if it has one)."""
    if wanted is not None:
        return wanted
    from core.settings import Settings

    settings = Settings.from_env({**os.environ, "ZENDO_JWT_SECRET": SECRET})
    return int(getattr(settings, "workers", 1))


async def wait_workers(root: int, port: int, wanted: int | None) -> int:
    """Until every worker answers (a single process is its own worker)."""
    expected = expected_workers(wanted)
    deadline = time.monotonic() + 60
    while True:
        try:
            await fix_counters(port, expected)
            return expected
        except (RuntimeError, aiohttp.ClientError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def start_server(args: argparse.Namespace, port: int, ping_rate: float) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ZENDO_PORT": str(port),
        "ZENDO_DATABASE_URL": args.database_url,
        "ZENDO_REDIS_URL": args.redis_url,
        "ZENDO_JWT_SECRET": SECRET,
        "ZENDO_STATE_DIR": "/tmp/zendo-bench-cost",
        "ZENDO_BCRYPT_ROUNDS": str(BCRYPT_ROUNDS),
        "ZENDO_LOGIN_ATTEMPTS_PER_MIN": "1000000",  # every login comes from 127.0.0.1
        # The abuse limits (CONTRACT §8a) would refuse a load test's traffic.
        "ZENDO_REGISTRATIONS_PER_MIN": "1000000",
        "ZENDO_MAX_OPEN_JOBS_PER_CLIENT": "1000000",
        "ZENDO_JOBS_PER_MIN_PER_CLIENT": "1000000",
        "ZENDO_OFFER_TIMEOUT_S": "600",  # no offer expires between two windows
        "ZENDO_PING_RATE_PER_S": str(ping_rate),
    }
    workers = [] if args.server_workers is None else ["--workers", str(args.server_workers)]
    return subprocess.Popen(
        [sys.executable, "-m", "zendo.cli", "serve", "--port", str(port), *workers],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open("/tmp/zendo-bench-cost-server.log", "wb"),
        preexec_fn=_raise_nofile,
    )


def start_module(module: str, *argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", module, *argv],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=open(f"/tmp/zendo-bench-cost-{module.rsplit('.', 1)[1]}.log", "wb"),
        preexec_fn=_raise_nofile,
    )


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def wait_http(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer")
            await asyncio.sleep(0.1)


async def scrape(url: str, pattern: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        text = await resp.text()
    match = re.search(pattern, text, re.M)
    return float(match.group(1)) if match else 0.0


async def fix_counters(port: int, workers: int) -> tuple[float, float]:
    """(accepted, rejected) fixes summed over the server's workers. Each answers /metrics
    for itself and the kernel picks one per connection, so scrape on new connections
    until every worker was seen (told apart by their counters' `_created` stamps)."""
    seen: dict[str, tuple[float, float]] = {}
    url = f"http://127.0.0.1:{port}/metrics"
    for _attempt in range(20 * workers):
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.get(url) as resp:
                text = await resp.text()
        created = re.search(r"^zendo_pings_accepted_created ([0-9.e+]+)$", text, re.M)
        accepted = re.search(r"^zendo_pings_accepted_total ([0-9.e+]+)$", text, re.M)
        rejected = re.findall(
            r'^zendo_pings_rejected_total\{reason="[a-z_]+"\} ([0-9.e+]+)$', text, re.M
        )
        key = created.group(1) if created else str(len(seen))
        seen[key] = (float(accepted.group(1)) if accepted else 0.0, sum(map(float, rejected)))
        if len(seen) >= workers:
            break
    if len(seen) < workers:
        raise RuntimeError(f"/metrics: saw {len(seen)} of {workers} workers")
    return sum(a for a, _r in seen.values()), sum(r for _a, r in seen.values())


def bare_count(port: int) -> Any:
    return scrape(f"http://127.0.0.1:{port}/count", r'"count":\s*(\d+)')


class Profiler:
    """py-spy on the server for one phase (optional: --profile DIR)."""

    def __init__(self, out_dir: str | None) -> None:
        self.out_dir = Path(out_dir) if out_dir else None
        self.exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which(
            "py-spy"
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.path: Path | None = None
        self.reports: dict[str, dict[str, Any]] = {}

    def start(self, pid: int, name: str) -> None:
        if self.out_dir is None or self.exe is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / f"{name}.txt"
        self.proc = subprocess.Popen(
            [
                *(self.exe, "record", "--pid", str(pid), "--subprocesses", "--rate", "250"),
                "--nonblocking",  # never pauses the server (so no native frames)
                *("--format", "raw", "-o", str(self.path)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self, name: str) -> None:
        if self.proc is None or self.path is None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.proc = None
        if self.path.exists():
            self.reports[name] = top_functions(self.path.read_text())

    def print(self) -> None:
        for name, report in self.reports.items():
            print(f"\npy-spy, {name} ({report['samples']} samples): top by self / by total")
            for (fn_s, share_s), (fn_t, share_t) in zip(
                report["self"], report["total"], strict=False
            ):
                print(f"  {share_s:5.1f} %  {fn_s[:60]:<60}  {share_t:5.1f} %  {fn_t[:60]}")


def top_functions(raw: str, n: int = 8) -> dict[str, Any]:
    """Self and total shares of each function in py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        k = int(count)
        samples += k
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        own[frames[-1]] += k
        for frame in set(frames):
            total[frame] += k
    share = 100.0 / max(1, samples)
    # The frames under every sample (runpy, the CLI, the loop's run) say nothing.
    inner = [(f, c) for f, c in total.most_common() if c < 0.8 * samples]
    return {
        "samples": samples,
        "self": [(f, c * share) for f, c in own.most_common(n)],
        "total": [(f, c * share) for f, c in inner[:n]],
    }


# ---- phases -------------------------------------------------------------------------------


async def measure(meter: Meter, coro: Any, settle_s: float = 0.0) -> tuple[Any, Delta]:
    before = await meter.snap()
    result = await coro
    if settle_s:
        await asyncio.sleep(settle_s)
    return result, Meter.delta(before, await meter.snap())


async def idle(meter: Meter, seconds: float) -> dict[str, float]:
    _none, delta = await measure(meter, asyncio.sleep(seconds))
    return delta.rates()


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


# ---- the run ------------------------------------------------------------------------------


def fmt(value: float, digits: int = 1) -> str:
    if value != value:  # NaN
        return "-"
    return f"{value:,.{digits}f}"


def ratio_of(a: float, b: float) -> float:
    return round(a / b, 2) if b > 0 and a == a else float("nan")


def clean(value: Any) -> Any:
    """NaN -> None, so the JSON line is strict JSON."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def check(ratio: float, limit: float) -> str:
    if ratio != ratio:
        return f"≤ {limit:g}× ?"
    return f"≤ {limit:g}× {'✔' if ratio <= limit else '✘'}"


def git_commit() -> str:
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    return out.stdout.strip() or "unknown"


class Helpers:
    """The client processes, started first so their imports overlap the seeding: a
    request driver and loadgen workers for the server, the same for the baselines."""

    def __init__(self, workers: int) -> None:
        from benchmarks.bench_gateway import Workers

        self.real_driver, self.bare_driver = DriverProc(), DriverProc()
        self.real_workers, self.bare_workers = Workers(workers), Workers(workers)

    def stop(self) -> None:
        """Ask any process still waiting for a command to close, then reap them all."""
        pairs = [(d.pipe, d.proc) for d in (self.real_driver, self.bare_driver)]
        for workers in (self.real_workers, self.bare_workers):
            pairs += zip(workers.pipes, workers.procs, strict=True)
        for pipe, proc in pairs:
            if proc.is_alive():
                with contextlib.suppress(OSError):
                    pipe.send(("close",))
        for driver in (self.real_driver, self.bare_driver):
            driver.stop()
        self.real_workers.stop()
        self.bare_workers.stop()


class Clock:
    def __init__(self) -> None:
        self.began = time.monotonic()

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.began:5.1f} s] {text}", flush=True)


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
        before, rejected0 = await fix_counters(port, n_workers)
        profiler.start(server.pid, "fixes")
        if profiler.proc is not None:
            await asyncio.sleep(0.5)  # py-spy attaches
        results, out["fix_delta"] = await measure(
            meter, workers.call_all("rate", args.hz, args.fix_s, per_worker)
        )
        profiler.stop("fixes")
        accepted, rejected = await fix_counters(port, n_workers)
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

    bare_port = free_port()
    bare = start_module("benchmarks.bare_ws", str(bare_port))
    workers = helpers.bare_workers
    try:
        await wait_http(f"http://127.0.0.1:{bare_port}/count")
        meter.server_pid = bare.pid
        await workers.connect(f"http://127.0.0.1:{bare_port}/ws", [None] * args.sockets)
        await asyncio.sleep(args.pause_s)
        out["bare_idle"] = await idle(meter, args.idle_s)
        count0 = await bare_count(bare_port)
        per_worker = args.sockets // args.workers
        _r, out["bare_delta"] = await measure(
            meter, workers.call_all("rate", args.hz, args.fix_s, per_worker)
        )
        out["bare_frames"] = await bare_count(bare_port) - count0
        count0 = await bare_count(bare_port)
        flat_per_worker = min(args.flat_sockets, args.sockets) // args.workers
        _r, out["flat_delta"] = await measure(
            meter, workers.call_all("flat", args.flat_s, flat_per_worker), settle_s=0.3
        )
        out["flat_frames"] = await bare_count(bare_port) - count0
        await workers.call_all("close")
    finally:
        stop_process(bare)
        meter.server_pid = 0
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


async def start_redis(args: argparse.Namespace) -> tuple[subprocess.Popen[bytes] | None, int]:
    """The private redis-server (unless --redis-url) and the pid of the one used."""
    redis_proc = None
    if args.redis_url == "private":
        from tests.ports import free_port

        redis_port = free_port()
        redis_proc = start_private_redis(redis_port)
        args.redis_url = f"redis://127.0.0.1:{redis_port}/0"
    deadline = time.monotonic() + 10
    while True:
        probe = Redis.from_url(args.redis_url)
        try:
            return redis_proc, int((await probe.info("server"))["process_id"])
        except (OSError, RedisConnectionError):
            if time.monotonic() > deadline:
                if redis_proc is not None:
                    stop_process(redis_proc)
                raise
            await asyncio.sleep(0.05)
        finally:
            await probe.aclose()


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
    connected, sent, accepted, rejected = (
        real[k] for k in ("connected", "sent", "accepted", "rejected")
    )
    fix_delta, fix_idle, rate = real["fix_delta"], real["fix_idle"], fix_rate
    story, story_delta = real["story"], real["story_delta"]
    completed = story["outcomes"].get("completed", 0)
    geo_sent, geo_delta, redis_idle = base["geo_sent"], base["geo_delta"], base["redis_idle"]
    bare_delta, bare_idle, bare_frames = base["bare_delta"], base["bare_idle"], base["bare_frames"]
    flat_delta, flat_frames, speed_ref = base["flat_delta"], base["flat_frames"], base["speed_ref"]
    real_routes, bare_routes = real["routes"], base["routes"]

    # ---- figures -------------------------------------------------------------------------
    fix: dict[str, Any] = {
        "sockets": connected,
        "hz": args.hz,
        "window_s": round(fix_delta.elapsed, 2),
        "sent": sent,
        "accepted": accepted,
        "rejected": rejected,
        "accepted_per_s": round(rate, 1),
        "idle_cores": {k: round(v, 4) for k, v in fix_idle.items()},
    }
    for part in ("server", "redis", "pg"):
        net, gross = per_unit(fix_delta, fix_idle, accepted, part)
        fix[f"{part}_us"], fix[f"{part}_us_gross"] = round(net, 2), round(gross, 2)
    fix["redis_commands_per_fix"] = round(fix_delta.redis_cmds / max(1, accepted), 3)
    fix["redis_connections_opened"] = fix_delta.redis_conns
    geo_net, geo_gross = per_unit(geo_delta, redis_idle, geo_sent, "redis")
    geo = {
        "commands": geo_sent,
        "per_pipeline": round(rate * FLUSH_LINGER_S, 1),
        "redis_us": round(geo_net, 2),
        "redis_us_gross": round(geo_gross, 2),
    }
    bare_net, bare_gross = per_unit(bare_delta, bare_idle, bare_frames, "server")
    bare_loop = {
        "frames": bare_frames,
        "us_per_frame": round(bare_net, 2),
        "us_per_frame_gross": round(bare_gross, 2),
        "flat_frames_per_s": round(speed_ref),
        "flat_us_per_frame": round(flat_delta.server / max(1, flat_frames) * 1e6, 2),
    }
    routes: dict[str, Any] = {}
    for name, label in ROUTES:
        z, b = real_routes[name], bare_routes[name]
        row: dict[str, Any] = {
            "label": label,
            "ok": z["result"]["ok"],
            "bare_ok": b["result"]["ok"],
        }
        row["non_2xx"] = {k: v for k, v in z["result"]["statuses"].items() if not 200 <= k < 300}
        for part in ("server", "pg", "redis"):
            net, gross = per_unit(z["delta"], real_routes["idle"], z["result"]["ok"], part)
            row[f"{part}_us"], row[f"{part}_us_gross"] = round(net, 1), round(gross, 1)
            bnet, bgross = per_unit(b["delta"], bare_routes["idle"], b["result"]["ok"], part)
            row[f"bare_{part}_us"], row[f"bare_{part}_us_gross"] = round(bnet, 1), round(bgross, 1)
        ok = max(1, z["result"]["ok"])
        row["redis_commands_per_request"] = round(z["delta"].redis_cmds / ok, 2)
        row["redis_connections_opened"] = z["delta"].redis_conns
        row["ratio"] = ratio_of(row["server_us"], row["bare_server_us"])
        row["ratio_gross"] = ratio_of(row["server_us_gross"], row["bare_server_us_gross"])
        routes[name] = row
    job: dict[str, Any] = {"jobs": args.jobs, "completed": completed, "outcomes": story["outcomes"]}
    for part in ("server", "pg", "redis"):
        net, gross = per_unit(story_delta, real_routes["idle"], completed, part)
        job[f"{part}_us"], job[f"{part}_us_gross"] = round(net, 1), round(gross, 1)
    job["total_us"] = round(job["server_us"] + job["pg_us"] + job["redis_us"], 1)
    job["redis_commands_per_job"] = round(story_delta.redis_cmds / max(1, completed), 1)
    job["total_us_gross"] = round(
        job["server_us_gross"] + job["pg_us_gross"] + job["redis_us_gross"], 1
    )
    job["jobs_per_s"] = round(completed / story["elapsed"], 1)

    ratios = {
        "server_fix_vs_bare_frame": ratio_of(fix["server_us"], bare_loop["us_per_frame"]),
        "redis_fix_vs_geoadd": ratio_of(fix["redis_us"], geo["redis_us"]),
        "server_fix_vs_bare_frame_gross": ratio_of(
            fix["server_us_gross"], bare_loop["us_per_frame_gross"]
        ),
        "redis_fix_vs_geoadd_gross": ratio_of(fix["redis_us_gross"], geo["redis_us_gross"]),
        **{f"route_{name}": routes[name]["ratio"] for name, _l in ROUTES},
    }
    targets = {
        "redis_fix_vs_geoadd": {"limit": TARGETS["redis_fix"]},
        "server_fix_vs_bare_frame": {"limit": TARGETS["server_fix"]},
        **{f"route_{name}": {"limit": TARGETS["route"]} for name in HOT_ROUTES},
    }
    for key, target in targets.items():
        target["ratio"] = ratios[key]
        target["met"] = bool(ratios[key] <= target["limit"])
    socket_idle_us = fix_idle["server"] * 1e6 / max(1, connected)
    redis_socket_idle_us = fix_idle["redis"] * 1e6 / max(1, connected)
    capacity = {
        "artisans_per_server_core_at_0.25_hz": round(1e6 / (fix["server_us"] / 4 + socket_idle_us)),
        "artisans_per_redis_core_at_0.25_hz": round(
            1e6 / (fix["redis_us"] / 4 + redis_socket_idle_us)
        ),
        "fixes_per_s_per_server_core": round(1e6 / fix["server_us"]),
        "jobs_per_s_per_server_core": round(1e6 / job["server_us"], 1),
        "jobs_per_s_per_core_all": round(1e6 / job["total_us"], 1),
        "server_idle_us_per_socket_s": round(socket_idle_us, 2),
    }
    res.update(
        speed_ref_bare_frames_per_s=bare_loop["flat_frames_per_s"],
        fix=fix,
        geoadd=geo,
        bare_loop=bare_loop,
        routes=routes,
        job=job,
        ratios=ratios,
        targets=targets,
        capacity=capacity,
        idle_cores={
            "requests": {k: round(v, 4) for k, v in real_routes["idle"].items()},
            "bare_requests": {k: round(v, 4) for k, v in bare_routes["idle"].items()},
            "fixes": fix["idle_cores"],
            "redis_alone": {k: round(v, 4) for k, v in redis_idle.items()},
            "bare_loop": {k: round(v, 4) for k, v in bare_idle.items()},
        },
        pg_background_cores_during_fixes=round(fix_delta.pg_bg / fix_delta.elapsed, 4),
        loadavg_end=list(os.getloadavg()),
        wall_s=round(time.monotonic() - clock.began, 1),
    )
    print_table(res)
    profiler.print()
    if profiler.reports:
        res["profile"] = profiler.reports
    return res


def print_table(res: dict[str, Any]) -> None:
    fix, geo, bare, job = res["fix"], res["geoadd"], res["bare_loop"], res["job"]
    ratios, cap = res["ratios"], res["capacity"]
    rows: list[tuple[str, str, str, str, str, str]] = [
        (
            f"server CPU per accepted fix ({fix['sockets']:,} sockets × {fix['hz']:g} Hz)",
            fmt(fix["server_us"]),
            fmt(fix["server_us_gross"]),
            f"bare loop {fmt(bare['us_per_frame'])} /frame",
            fmt(ratios["server_fix_vs_bare_frame"], 2),
            check(ratios["server_fix_vs_bare_frame"], TARGETS["server_fix"]),
        ),
        (
            "Redis CPU per accepted fix",
            fmt(fix["redis_us"]),
            fmt(fix["redis_us_gross"]),
            f"GEOADD {fmt(geo['redis_us'])} ({fmt(geo['per_pipeline'], 0)}/pipeline)",
            fmt(ratios["redis_fix_vs_geoadd"], 2),
            check(ratios["redis_fix_vs_geoadd"], TARGETS["redis_fix"]),
        ),
        ("PostgreSQL CPU per accepted fix", fmt(fix["pg_us"]), fmt(fix["pg_us_gross"]), "", "", ""),
        (
            "Redis commands per accepted fix / per job (incl. in scripts)",
            f"{fix['redis_commands_per_fix']} / {job['redis_commands_per_job']}",
            "",
            "GEOADD: 1 per fix",
            "",
            "",
        ),
    ]
    for name, row in res["routes"].items():
        mark = " (bcrypt)" if name == "login" else ""
        rows.append(
            (
                f"server CPU per request {row['label']}{mark}",
                fmt(row["server_us"], 0),
                fmt(row["server_us_gross"], 0),
                f"bare {fmt(row['bare_server_us'], 0)}",
                fmt(row["ratio"], 2),
                check(row["ratio"], TARGETS["route"]) if name in HOT_ROUTES else "(not a target)",
            )
        )
    for name, row in res["routes"].items():
        rows.append(
            (
                f"  PostgreSQL / Redis CPU per request {name}",
                f"{fmt(row['pg_us'], 0)} / {fmt(row['redis_us'], 0)}",
                f"{fmt(row['pg_us_gross'], 0)} / {fmt(row['redis_us_gross'], 0)}",
                f"bare PG {fmt(row['bare_pg_us'], 0)}",
                "",
                "",
            )
        )
    rows += [
        (
            f"per job ({job['completed']}/{job['jobs']} completed): server + PG + Redis",
            f"{fmt(job['server_us'], 0)} + {fmt(job['pg_us'], 0)} + {fmt(job['redis_us'], 0)}"
            f" = {fmt(job['total_us'], 0)}",
            fmt(job["total_us_gross"], 0),
            "",
            "",
            "",
        ),
        (
            "speed reference: bare loop flat out",
            f"{bare['flat_frames_per_s']:,} frames/s",
            "",
            f"{fmt(bare['flat_us_per_frame'], 2)} µs/frame",
            "",
            "",
        ),
    ]
    head = ("measure", "µs net", "µs gross", "baseline (µs net)", "ratio", "target")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(6)]
    print(
        f"\n== cost model, {res['date']}, commit {res['commit']}, speed reference "
        f"{res['speed_ref_bare_frames_per_s']:,} frames/s =="
    )
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(
        "\nnet = (window CPU - idle rate x window) / units; ratios and targets on net. "
        "Idle (cores) before the requests: "
        + ", ".join(f"{k} {v:.3f}" for k, v in res["idle_cores"]["requests"].items())
        + "; before the fixes: "
        + ", ".join(f"{k} {v:.3f}" for k, v in res["idle_cores"]["fixes"].items())
    )
    print(
        f"sustained in this run: {fix['accepted_per_s']:,.0f} fixes/s accepted "
        f"({fix['accepted']:,.0f} of {fix['sent']:,} sent), {job['jobs_per_s']} jobs/s end to end"
    )
    print(
        "capacity estimate from CPU cost, one core of this machine: "
        f"{cap['artisans_per_server_core_at_0.25_hz']:,} artisans at 1 fix / 4 s on the server "
        f"({cap['server_idle_us_per_socket_s']} µs/s idle per socket), "
        f"{cap['artisans_per_redis_core_at_0.25_hz']:,} on Redis; "
        f"{cap['jobs_per_s_per_server_core']} jobs/s on the server, "
        f"{cap['jobs_per_s_per_core_all']} jobs/s server + PostgreSQL + Redis"
    )
    met = [k for k, t in res["targets"].items() if t["met"]]
    missed = [k for k, t in res["targets"].items() if not t["met"]]
    print(f"targets met: {', '.join(met) or 'none'}; missed: {', '.join(missed) or 'none'}")
    print(
        "load average start "
        + " ".join(f"{x:.2f}" for x in res["loadavg_start"])
        + ", end "
        + " ".join(f"{x:.2f}" for x in res["loadavg_end"])
        + f"; wall {res['wall_s']} s"
    )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--database-url",
        default=os.environ.get("ZENDO_DATABASE_URL", "postgresql:///zendo_cost"),
        help="TRUNCATEd: a scratch database",
    )
    p.add_argument(
        "--redis-url",
        default="private",
        help="'private' (default): a redis-server of its own; else a URL (FLUSHed)",
    )
    p.add_argument("--quick", action="store_true", help="small counts (the smoke test)")
    p.add_argument("--sockets", type=int, help="artisan sockets in the fix phase")
    p.add_argument("--hz", type=float, help="fixes per socket per second")
    p.add_argument("--fix-s", type=float, help="fix window (and baselines) seconds")
    p.add_argument("--req-jobs", type=int, help="requests per route window")
    p.add_argument("--req-rate", type=float, help="requests per second in a route window")
    p.add_argument("--jobs", type=int, help="whole jobs in the job window")
    p.add_argument("--job-rate", type=float, help="jobs started per second")
    p.add_argument(
        "--server-workers",
        type=int,
        help="zendo serve --workers N (default: the server's own default)",
    )
    p.add_argument("--profile", metavar="DIR", help="py-spy the server (perturbs its CPU)")
    args = p.parse_args(argv)
    quick = args.quick
    defaults = {
        "sockets": 400 if quick else 4000,
        "hz": 2.0 if quick else 1.0,
        "fix_s": 1.5 if quick else 12.0,
        "req_jobs": 30 if quick else 300,
        "req_rate": 150.0 if quick else 200.0,
        "jobs": 15 if quick else 150,
        "job_rate": 20.0 if quick else 30.0,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.warm_jobs = 3 if quick else 20
    args.logins = 4 if quick else 20
    args.login_rate = 10.0
    args.clients = max(20, args.req_jobs // 2)
    args.idle_s = 0.5 if quick else 3.0
    args.warm_s = 0.6 if quick else 3.0
    args.settle_s = 0.1 if quick else 0.2
    args.pause_s = 0.3 if quick else 1.0
    args.flat_sockets = 300 if quick else 1000
    args.flat_s = 1.0 if quick else 5.0
    args.workers = 2
    return args


def run(argv: list[str] | None = None) -> None:
    import uvloop

    result = uvloop.run(main(parse(argv)))
    print(json.dumps(clean(result), default=str))


if __name__ == "__main__":
    run()
