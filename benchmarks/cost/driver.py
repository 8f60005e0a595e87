"""The request driver: its own process, commanded over a pipe, that drives the HTTP
routes and holds artisan and client sockets."""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import random
import resource
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import aiohttp

from benchmarks.children import die_with_parent
from benchmarks.cost.constants import JOB_SPECIALTY, PASSWORD, STATUSES


@dataclass
class Job:
    id: str
    client: int
    start_code: str | None
    artisan: int | None = None
    offer_id: str | None = None


async def _paced(count: int, rate: float, one: Callable[[int], Coroutine[Any, Any, None]]) -> float:
    """Start `one(i)` for i < count at `rate` per second, wait for all; the start time."""
    started = time.monotonic()
    tasks: list[asyncio.Task[None]] = []
    for i in range(count):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return started


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
    not_json: Counter[int] = field(default_factory=Counter)  # answers by status
    not_json_sample: str = ""

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
            try:
                return resp.status, (json.loads(raw) if raw else None)
            except ValueError:  # not JSON: kept as text, counted under its status
                self.not_json[resp.status] += 1
                self.not_json_sample = raw[:200].decode(errors="replace")
                return resp.status, None

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

    async def route(self, name: str, count: int, rate: float, first: int = 0) -> dict[str, Any]:
        """Requests `first` to `first + count` of one route at `rate`/s (open loop); waits
        for every answer. The jobs of a route's requests are those the creates from 0 on
        made, in order."""
        if name == "create" and first == 0:
            self.job_order = []
        statuses: Counter[int] = Counter()
        self.not_json.clear()

        async def one(k: int) -> None:
            i = first + k
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

        started = await _paced(count, rate, one)
        if name == "create":
            await self._wait_offers(2.0)
        ok = sum(n for s, n in statuses.items() if 200 <= s < 300)
        out: dict[str, Any] = {
            "ok": ok,
            "statuses": dict(statuses),
            "elapsed": time.monotonic() - started,
        }
        if self.not_json:
            out["not_json"] = {"statuses": dict(self.not_json), "sample": self.not_json_sample}
        return out

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

        started = await _paced(count, rate, one)
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

    # SIGTERM when the bench dies (benchmarks/children.py); started from its main thread.
    parent = mp.parent_process()
    die_with_parent(parent.pid if parent is not None else None)
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
