"""A live fleet for the ops console: the apps of `zendo seed` users, in one process.

    .venv/bin/python -m benchmarks.fleet --seed /tmp/seed.jsonl --duration 600

Every seeded artisan connects to /ws, sends their seeded position, then a fix every
`--fix-every` seconds while walking slowly; they accept most offers (declining or
letting the others expire), then move their job on: EN_ROUTE, ARRIVED, IN_PROGRESS
(with the client's start code), COMPLETED. Seeded clients create `--jobs-per-s` jobs
near the fleet. It only talks to the `--url` server (loopback by default) and stops
after `--duration` seconds. Seeded access tokens live 15 minutes: seed right before.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import resource
import time
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks import reconnect

SPECIALTIES = ("PLUMBER", "ELECTRICIAN", "LOCKSMITH", "HEATING", "GLAZIER", "APPLIANCE_REPAIR")
WALK_M_PER_S = 1.5
ACCEPT_P = 0.7
STEP_S = (2.0, 6.0)  # an artisan's pause before each move of an accepted job


class Fleet:
    def __init__(self, args: argparse.Namespace, users: list[dict[str, Any]]) -> None:
        self.args = args
        self.url = args.url.rstrip("/")
        self.artisans = [u for u in users if u["role"] == "ARTISAN"][: args.artisans]
        self.clients = [u for u in users if u["role"] == "CLIENT"]
        self.start_codes: dict[str, str] = {}
        self.connected = 0
        self.jobs = 0
        self.rng = random.Random(7)
        self.stop_at: float = time.monotonic() + args.duration

    def left(self) -> float:
        return self.stop_at - time.monotonic()

    async def artisan(self, http: aiohttp.ClientSession, user: dict[str, Any]) -> None:
        auth = {"Authorization": f"Bearer {user['access_token']}"}
        attempt = 0
        while self.left() > 0:
            try:
                async with http.ws_connect(f"{self.url}/ws", headers=auth, heartbeat=None) as ws:
                    attempt = 0
                    self.connected += 1
                    try:
                        await self._drive(http, ws, user, auth)
                    finally:
                        self.connected -= 1
                # The server closed the socket (a restart): back by the reconnect rule.
                await asyncio.sleep(reconnect.delay_s(attempt))
            except aiohttp.WSServerHandshakeError as exc:
                hint = reconnect.hint_from_headers(dict(exc.headers or {}))
                await asyncio.sleep(reconnect.delay_s(attempt, hint))
                attempt += 1
            except aiohttp.ClientError:
                await asyncio.sleep(reconnect.delay_s(attempt))
                attempt += 1

    async def _drive(
        self,
        http: aiohttp.ClientSession,
        ws: aiohttp.ClientWebSocketResponse,
        user: dict[str, Any],
        auth: dict[str, str],
    ) -> None:
        lat, lon = float(user["lat"]), float(user["lon"])
        heading = self.rng.uniform(0, 2 * math.pi)

        async def fixes() -> None:
            nonlocal lat, lon, heading
            await asyncio.sleep(self.rng.uniform(0, self.args.fix_every))
            while True:
                await ws.send_json(
                    {"type": "location", "lat": lat, "lon": lon, "ts": int(time.time() * 1000)}
                )
                await asyncio.sleep(self.args.fix_every)
                heading += self.rng.uniform(-0.5, 0.5)
                step_m = WALK_M_PER_S * self.args.fix_every
                lat += step_m * math.cos(heading) / 111_320
                lon += step_m * math.sin(heading) / (111_320 * math.cos(math.radians(lat)))

        sender = asyncio.create_task(fixes())
        answers: set[asyncio.Task[None]] = set()
        try:
            async with asyncio.timeout(max(0.0, self.left())):
                async for msg in ws:
                    if msg.type is not aiohttp.WSMsgType.TEXT:
                        break
                    frame = json.loads(msg.data)
                    if frame.get("type") == "offer":
                        task = asyncio.create_task(self._answer(http, ws, frame, auth))
                        answers.add(task)
                        task.add_done_callback(answers.discard)
        except TimeoutError:
            pass
        finally:
            sender.cancel()
            for task in answers:
                task.cancel()

    async def _answer(
        self,
        http: aiohttp.ClientSession,
        ws: aiohttp.ClientWebSocketResponse,
        offer: dict[str, Any],
        auth: dict[str, str],
    ) -> None:
        await asyncio.sleep(self.rng.uniform(0.5, 3.0))
        roll = self.rng.random()
        if roll > ACCEPT_P:
            if roll > ACCEPT_P + (1 - ACCEPT_P) / 2:
                await ws.send_json({"type": "offer.decline", "offer_id": offer["offer_id"]})
            return  # else: let it expire
        await ws.send_json({"type": "offer.accept", "offer_id": offer["offer_id"]})
        job_id = offer["intervention"]["id"]
        for status in ("EN_ROUTE", "ARRIVED", "IN_PROGRESS", "COMPLETED"):
            await asyncio.sleep(self.rng.uniform(*STEP_S))
            body: dict[str, Any] = {"status": status}
            if status == "IN_PROGRESS":
                body["start_code"] = self.start_codes.get(job_id, "")
            async with http.post(
                f"{self.url}/interventions/{job_id}/status", json=body, headers=auth
            ) as resp:
                if resp.status != 200:
                    return  # taken by another, cancelled, or not ours after all

    async def demand(self, http: aiohttp.ClientSession) -> None:
        if not self.clients or self.args.jobs_per_s <= 0:
            return
        while self.left() > 0:
            await asyncio.sleep(self.rng.expovariate(self.args.jobs_per_s))
            client = self.rng.choice(self.clients)
            near = self.rng.choice(self.artisans)
            body = {
                "specialty": self.rng.choice(SPECIALTIES),
                "lat": float(near["lat"]) + self.rng.uniform(-0.01, 0.01),
                "lon": float(near["lon"]) + self.rng.uniform(-0.01, 0.01),
                "address": "fleet demo",
            }
            auth = {"Authorization": f"Bearer {client['access_token']}"}
            async with http.post(f"{self.url}/interventions", json=body, headers=auth) as resp:
                if resp.status == 201:
                    job = await resp.json()
                    self.start_codes[job["id"]] = job["start_code"]
                    self.jobs += 1

    async def report(self) -> None:
        while self.left() > 0:
            await asyncio.sleep(5)
            print(f"{self.connected} artisans connected, {self.jobs} jobs created", flush=True)

    async def run(self) -> None:
        limit = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=limit) as http:
            tasks = [asyncio.create_task(self.report()), asyncio.create_task(self.demand(http))]
            # Sockets open at --connect-rate per second: a ramp, not a storm.
            for user in self.artisans:
                if self.left() <= 0:
                    break
                tasks.append(asyncio.create_task(self.artisan(http, user)))
                await asyncio.sleep(1 / self.args.connect_rate)
            await asyncio.sleep(max(0.0, self.left()))
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=Path, required=True, help="a `zendo seed` output file")
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--artisans", type=int, default=None, help="how many (default: all)")
    parser.add_argument("--fix-every", type=float, default=4.0, help="seconds between fixes")
    parser.add_argument("--jobs-per-s", type=float, default=0.5)
    parser.add_argument("--connect-rate", type=float, default=500.0, help="sockets opened/s")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds, then stop")
    args = parser.parse_args()
    users = [json.loads(line) for line in args.seed.read_text().splitlines() if line.strip()]
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(Fleet(args, users).run())


if __name__ == "__main__":
    main()
