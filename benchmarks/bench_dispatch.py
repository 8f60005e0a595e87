"""Purpose-built dispatch latency harness (asyncio + uvloop, one process).

Against a running `zendo serve` seeded with `zendo seed` (the JSON-lines output holds the
users' access tokens), it:

1. opens M artisan WebSockets, each sending a location fix at once (-> ONLINE) and then
   every `--fix-every` s, and C client WebSockets;
2. creates interventions at R per second (POST /interventions near a random connected
   artisan, with that artisan's specialty) for D seconds;
3. artisans accept every offer over the socket (`offer.accept`) after `--accept-delay` s;
   once the client sees ASSIGNED it cancels after `--hold` s, which frees the artisan.

It times, on one clock in one process (so far less scheduling noise than locust):
- create -> first offer frame: POST sent -> the first `offer` frame of that job read on
  an artisan socket;
- accept -> client status frame: `offer.accept` sent -> the client's ASSIGNED
  `intervention.status` frame read;
and counts errors: non-2xx answers, `error` frames, socket failures, jobs that never got
an offer, UNFULFILLED jobs.

    .venv/bin/python -m benchmarks.bench_dispatch --host http://127.0.0.1:8080 \
        --seed /tmp/seed.jsonl --artisans 10000 --rate 50 --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import random
import resource
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import uvloop

from benchmarks.arguments import non_negative_float, positive_float, positive_int, seed_file
from core.gateway_config import GatewayConfig
from gateway.gcpacer import GcPacer, take_over


@dataclass
class Stats:
    first_offer_ms: list[float] = field(default_factory=list)
    accept_ms: list[float] = field(default_factory=list)
    post_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    # Batch accounting over the jobs created while measuring: offer frames per job and
    # how each of their offers ended (`offer.result` outcome; "none" = no result yet).
    offers_per_job: list[int] = field(default_factory=list)
    offer_results: Counter[str] = field(default_factory=Counter)
    # The harness holds as many sockets as the server and has the same GC problem: its
    # own pauses would show up as server latency. It paces its GC like the gateway
    # (gateway/gcpacer.py) and reports what pauses remain.
    harness_gc_ms: list[float] = field(default_factory=list)


class Harness:
    def __init__(
        self,
        args: argparse.Namespace,
        artisans: list[dict[str, Any]],
        clients: list[dict[str, Any]],
    ):
        self.args = args
        self.host = args.host.rstrip("/")
        self.ws_url = self.host.replace("http", "ws", 1) + "/ws"
        self.artisans = artisans
        self.clients = clients
        self.stats = Stats()
        self.session: aiohttp.ClientSession | None = None
        self.artisan_ws: dict[str, aiohttp.ClientWebSocketResponse] = {}
        self.client_ws: dict[str, aiohttp.ClientWebSocketResponse] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        # Job id -> times (perf_counter), paired whichever end arrives first.
        self.post_sent: dict[str, float] = {}
        self.first_offer: dict[str, float] = {}
        self.accept_sent: dict[str, float] = {}
        self.measuring = False
        # Batch mode (ZENDO_OFFER_BATCH > 1): a job's offer reaches several artisans; only
        # the first socket to read it accepts (the fastest human), the others wait for
        # their `offer.result` (`taken`) and do nothing more.
        self.accepting_job: set[str] = set()
        self.measured_jobs: set[str] = set()
        self.offers_of_job: dict[str, list[str]] = {}
        self.offer_outcome: dict[str, str] = {}

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # ---- sockets ----------------------------------------------------------------------
    async def _connect(self, profile: dict[str, Any], sem: asyncio.Semaphore) -> Any:
        assert self.session is not None
        async with sem:
            for _ in range(5):
                try:
                    ws = await self.session.ws_connect(
                        self.ws_url,
                        headers={"Authorization": f"Bearer {profile['access_token']}"},
                        heartbeat=None,
                        autoping=True,
                    )
                    msg = await ws.receive(timeout=30)
                    if msg.type is aiohttp.WSMsgType.TEXT and '"hello"' in msg.data:
                        return ws
                    await ws.close()
                except (TimeoutError, aiohttp.ClientError, OSError):
                    await asyncio.sleep(0.3)
            self.stats.errors["ws connect"] += 1
            return None

    async def connect_all(self) -> None:
        sem = asyncio.Semaphore(self.args.connect_concurrency)

        async def artisan(profile: dict[str, Any]) -> None:
            ws = await self._connect(profile, sem)
            if ws is None:
                return
            aid = profile["user_id"]
            self.artisan_ws[aid] = ws
            await self._fix(ws, profile)
            self.spawn(self._artisan_reader(aid, ws))

        async def client(profile: dict[str, Any]) -> None:
            ws = await self._connect(profile, sem)
            if ws is not None:
                self.client_ws[profile["user_id"]] = ws
                self.spawn(self._client_reader(profile, ws))

        started = time.perf_counter()
        await asyncio.gather(*(artisan(p) for p in self.artisans))
        await asyncio.gather(*(client(p) for p in self.clients))
        print(
            f"connected {len(self.artisan_ws)} artisans, {len(self.client_ws)} clients "
            f"in {time.perf_counter() - started:.1f}s",
            flush=True,
        )

    async def _fix(self, ws: Any, profile: dict[str, Any]) -> None:
        lat = float(profile["lat"]) + random.uniform(-0.00005, 0.00005)
        lon = float(profile["lon"]) + random.uniform(-0.00005, 0.00005)
        frame = {"type": "location", "lat": lat, "lon": lon, "ts": int(time.time() * 1000)}
        try:
            await ws.send_str(json.dumps(frame))
        except Exception:
            self.stats.errors["ws send location"] += 1

    async def fixes(self) -> None:
        """Every artisan sends a fix every --fix-every s, spread evenly over the period."""
        by_id = {p["user_id"]: p for p in self.artisans}
        ids = list(self.artisan_ws)
        if not ids:
            return
        gap = self.args.fix_every / len(ids)
        next_at = time.perf_counter()
        for aid in itertools.cycle(ids):
            next_at += gap
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            ws = self.artisan_ws.get(aid)
            if ws is not None and not ws.closed:
                await self._fix(ws, by_id[aid])

    async def _artisan_reader(self, aid: str, ws: Any) -> None:
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            received = time.perf_counter()
            frame = orjson.loads(msg.data)
            kind = frame["type"]
            if kind == "offer":
                job_id = frame["intervention"]["id"]
                self.offers_of_job.setdefault(job_id, []).append(frame["offer_id"])
                if job_id not in self.first_offer:
                    self.first_offer[job_id] = received
                    self._pair_first_offer(job_id)
                if job_id not in self.accepting_job:
                    self.accepting_job.add(job_id)
                    self.spawn(self._accept(ws, frame))
            elif kind == "offer.result":
                self.offer_outcome[frame["offer_id"]] = frame["outcome"]
            elif kind == "error":
                self.stats.errors[f"error frame {frame.get('code')}"] += 1
        if not self.stopping:
            self.stats.errors["artisan socket closed"] += 1

    stopping = False

    async def _accept(self, ws: Any, offer: dict[str, Any]) -> None:
        if self.args.accept_delay:
            await asyncio.sleep(self.args.accept_delay)
        job_id = offer["intervention"]["id"]
        self.accept_sent[job_id] = time.perf_counter()
        await ws.send_str(json.dumps({"type": "offer.accept", "offer_id": offer["offer_id"]}))

    async def _client_reader(self, profile: dict[str, Any], ws: Any) -> None:
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            received = time.perf_counter()
            frame = orjson.loads(msg.data)
            if frame["type"] == "error":
                self.stats.errors[f"error frame {frame.get('code')}"] += 1
                continue
            if frame["type"] != "intervention.status":
                continue
            job = frame["intervention"]
            status = job["status"]
            if status == "ASSIGNED":
                sent = self.accept_sent.pop(job["id"], None)
                if sent is not None and self.measuring:
                    self.stats.accept_ms.append((received - sent) * 1000)
                self.spawn(self._cancel(profile, job["id"]))
            elif status in ("UNFULFILLED", "CANCELLED", "COMPLETED"):
                if self.measuring:
                    self.stats.outcomes[status] += 1

    async def _cancel(self, profile: dict[str, Any], job_id: str) -> None:
        await asyncio.sleep(self.args.hold)
        assert self.session is not None
        async with self.session.post(
            f"{self.host}/interventions/{job_id}/cancel",
            headers={"Authorization": f"Bearer {profile['access_token']}"},
        ) as resp:
            await resp.read()
            if resp.status != 200 and resp.status != 409:
                self.stats.errors[f"cancel {resp.status}"] += 1

    def _pair_first_offer(self, job_id: str) -> None:
        if job_id in self.post_sent and job_id in self.first_offer:
            ms = (self.first_offer[job_id] - self.post_sent.pop(job_id)) * 1000
            if self.measuring:
                self.stats.first_offer_ms.append(ms)

    # ---- load --------------------------------------------------------------------------
    async def _create(self, client: dict[str, Any]) -> None:
        assert self.session is not None
        spot = self.artisans[random.randrange(len(self.artisans))]
        body = {
            "specialty": spot["specialty"],
            "lat": float(spot["lat"]) + random.uniform(-0.01, 0.01),
            "lon": float(spot["lon"]) + random.uniform(-0.01, 0.01),
            "description": "bench",
        }
        sent = time.perf_counter()
        try:
            async with self.session.post(
                f"{self.host}/interventions",
                data=orjson.dumps(body),
                headers={
                    "Authorization": f"Bearer {client['access_token']}",
                    "Content-Type": "application/json",
                },
            ) as resp:
                payload = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, OSError) as exc:
            self.stats.errors[f"POST /interventions {type(exc).__name__}"] += 1
            return
        if self.measuring:
            self.stats.post_ms.append((time.perf_counter() - sent) * 1000)
        if status != 201:
            self.stats.errors[f"POST /interventions {status}"] += 1
            return
        job_id = orjson.loads(payload)["id"]
        if self.measuring:
            self.measured_jobs.add(job_id)
        self.post_sent[job_id] = sent
        self._pair_first_offer(job_id)

    async def load(self) -> None:
        clients = itertools.cycle([c for c in self.clients if c["user_id"] in self.client_ws])
        gap = 1.0 / self.args.rate
        warmup_end = time.perf_counter() + self.args.warmup
        end = warmup_end + self.args.duration
        next_at = time.perf_counter()
        created = 0
        while True:
            now = time.perf_counter()
            if now >= end:
                break
            self.measuring = now >= warmup_end
            next_at += gap
            if next_at > now:
                await asyncio.sleep(next_at - now)
            self.spawn(self._create(next(clients)))
            created += 1
        self.measuring = True
        await asyncio.sleep(self.args.drain)
        self.measuring = False
        never = sum(1 for _ in self.post_sent)
        self.stats.errors["job without an offer (at the end)"] += never
        for job_id in self.measured_jobs:
            offer_ids = self.offers_of_job.get(job_id, [])
            self.stats.offers_per_job.append(len(offer_ids))
            for offer_id in offer_ids:
                self.stats.offer_results[self.offer_outcome.get(offer_id, "none")] += 1
        print(f"created {created} interventions", flush=True)

    async def run(self) -> Stats:
        conn = aiohttp.TCPConnector(limit=0, force_close=False)
        self.session = aiohttp.ClientSession(connector=conn)
        pacer = _pace_gc(self.stats)
        try:
            await self.connect_all()
            fixer = asyncio.create_task(self.fixes())
            await asyncio.sleep(self.args.settle)
            await self.load()
            fixer.cancel()
        finally:
            self.stopping = True
            for ws in [*self.artisan_ws.values(), *self.client_ws.values()]:
                await ws.close()
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await self.session.close()
            pacer.stop()
        return self.stats


def _pace_gc(stats: Stats) -> GcPacer:
    config = GatewayConfig()
    take_over(config)
    started = [0.0]

    def on_gc(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            stats.harness_gc_ms.append((time.perf_counter() - started[0]) * 1e3)

    gc.callbacks.append(on_gc)
    pacer = GcPacer(config)
    pacer.start(asyncio.get_running_loop())
    return pacer


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(stats: Stats) -> dict[str, Any]:
    def row(values: list[float]) -> dict[str, Any]:
        return {
            "count": len(values),
            "p50": round(_pct(values, 0.50), 1),
            "p90": round(_pct(values, 0.90), 1),
            "p99": round(_pct(values, 0.99), 1),
            "max": round(max(values), 1) if values else None,
            "mean": round(statistics.fmean(values), 1) if values else None,
        }

    offers = sum(stats.offers_per_job)
    jobs = len(stats.offers_per_job)
    return {
        "offers per job": {
            "jobs": jobs,
            "offers": offers,
            "mean": round(offers / jobs, 2) if jobs else None,
            "distribution": dict(sorted(Counter(stats.offers_per_job).items())),
        },
        "offer results (share of offers)": {
            outcome: f"{count} ({100 * count / offers:.1f} %)"
            for outcome, count in stats.offer_results.most_common()
        }
        if offers
        else {},
        "create -> first offer frame (ms)": row(stats.first_offer_ms),
        "accept -> client status frame (ms)": row(stats.accept_ms),
        "POST /interventions (ms)": row(stats.post_ms),
        "harness GC pauses (ms)": {
            "count": len(stats.harness_gc_ms),
            "over 10 ms": sum(1 for ms in stats.harness_gc_ms if ms > 10),
            "max": round(max(stats.harness_gc_ms), 1) if stats.harness_gc_ms else None,
        },
        "outcomes": dict(stats.outcomes),
        "errors": dict(stats.errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="http://127.0.0.1:8080")
    parser.add_argument(
        "--seed", type=seed_file, required=True, help="`zendo seed --out` JSON-lines file"
    )
    parser.add_argument("--artisans", type=positive_int, default=1000)
    parser.add_argument("--clients", type=positive_int, default=200)
    parser.add_argument(
        "--rate", type=positive_float, default=10.0, help="interventions per second"
    )
    parser.add_argument("--duration", type=positive_float, default=30.0, help="measured seconds")
    parser.add_argument("--warmup", type=non_negative_float, default=5.0)
    parser.add_argument("--settle", type=non_negative_float, default=3.0, help="after connecting")
    parser.add_argument(
        "--drain", type=non_negative_float, default=3.0, help="after the last creation"
    )
    parser.add_argument("--fix-every", type=positive_float, default=4.0)
    parser.add_argument("--accept-delay", type=non_negative_float, default=0.0)
    parser.add_argument(
        "--hold", type=non_negative_float, default=0.5, help="ASSIGNED -> client cancel"
    )
    parser.add_argument("--connect-concurrency", type=positive_int, default=100)
    parser.add_argument("--out", help="write the JSON report here too")
    args = parser.parse_args()

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    artisans = [r for r in args.seed if r["role"] == "ARTISAN"][: args.artisans]
    clients = [r for r in args.seed if r["role"] == "CLIENT"][: args.clients]
    if not artisans or not clients:
        parser.error("--seed: the file needs both artisans and clients")
    stats = uvloop.run(Harness(args, artisans, clients).run())
    result = report(stats)
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
