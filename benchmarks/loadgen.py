"""Asyncio WebSocket load generator: one worker process holds a slice of the sockets.

The parent drives workers through a Pipe with commands:
  ("connect", url, tokens)         open one socket per token (Bearer), wait for hello;
                                   refusals retried by the README's reconnect rule
  ("storm", url, tokens, rate)     open them at `rate`/s, refusals retried by the README's
                                   reconnect rule; times to hello and to being served;
                                   each then says `presence` ONLINE
  ("rate", hz, seconds, active[, step_m])
                                   `active` sockets each send `hz` fixes/s (spread evenly),
                                   each fix `step_m` metres north of the last (default 1.1)
  ("flat", seconds, active)        `active` sockets send as fast as the loop allows
  ("close",)                       close everything and exit
Each answers with a dict (counts, errors).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import resource
import time
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
import uvloop

from benchmarks import reconnect
from benchmarks.children import die_with_parent

_CENTER = (48.8566, 2.3522)
# ~1 m per fix: a walking pace (an artisan waiting for a job mostly stands still), under
# the 25 m that makes a fix a stream row; never "too fast" at the rates used here.
DEFAULT_STEP_M = 1.1
METRES_PER_DEGREE = 111_195.0
RECONNECT_ATTEMPTS = 12  # a socket's tries, about a minute of back-off at most
_ONLINE = '{"type": "presence", "status": "ONLINE"}'
_TRY_AGAIN_LATER = 1013  # a socket refused after its upgrade (README, "Reconnecting")


class Worker:
    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []
        self.positions: list[tuple[float, float]] = []
        self.readers: list[asyncio.Task[None]] = []
        self.errors = 0

    async def _drain(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:  # answers the server's heartbeats; counts error frames
            if msg.type is aiohttp.WSMsgType.TEXT and '"error"' in msg.data:
                self.errors += 1

    async def _open(self, url: str, token: str | None, sem: asyncio.Semaphore) -> bool:
        """One socket, and with a token its `hello`. A refused handshake (503, or a 1013
        close instead of `hello`) or a failed one is retried by the README's reconnect rule
        (`reconnect.delay_s`, honouring the server's hint), as an app retries: up to
        RECONNECT_ATTEMPTS attempts; False after the last."""
        assert self.session is not None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        for attempt in range(RECONNECT_ATTEMPTS):
            hint = 0.0
            opened: aiohttp.ClientWebSocketResponse | None = None
            try:
                async with sem:  # not held while backing off
                    ws = opened = await self.session.ws_connect(
                        url, headers=headers, heartbeat=None
                    )
                    if not token:
                        break
                    msg = await ws.receive(timeout=30)
                    if msg.type is aiohttp.WSMsgType.TEXT and '"hello"' in msg.data:
                        break
                    if msg.type is aiohttp.WSMsgType.CLOSE and msg.data == _TRY_AGAIN_LATER:
                        hint = reconnect.hint_from_close_reason(msg.extra)
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status == 503:
                    hint = reconnect.hint_from_headers(dict(exc.headers or {}))
            except (aiohttp.ClientError, OSError, TimeoutError):
                pass
            if opened is not None:  # upgraded, but no hello: not kept
                await opened.close()
            if attempt + 1 < RECONNECT_ATTEMPTS:
                await asyncio.sleep(reconnect.delay_s(attempt, hint))
        else:
            return False
        rng = random.Random(len(self.sockets))
        self.sockets.append(ws)
        self.positions.append(
            (_CENTER[0] + rng.uniform(-0.1, 0.1), _CENTER[1] + rng.uniform(-0.1, 0.1))
        )
        self.readers.append(asyncio.create_task(self._drain(ws)))
        return True

    async def connect(self, url: str, tokens: list[str | None]) -> dict[str, Any]:
        if self.session is None:
            connector = aiohttp.TCPConnector(limit=0, force_close=False)
            self.session = aiohttp.ClientSession(connector=connector)
        sem = asyncio.Semaphore(200)
        results = await asyncio.gather(*(self._open(url, t, sem) for t in tokens))
        return {"connected": sum(results), "failed": len(results) - sum(results)}

    async def storm(self, url: str, tokens: list[str], rate: float) -> dict[str, Any]:
        """Each socket starts at its slot of a steady `rate`/s; a 503 before the upgrade or a
        1013 close instead of `hello` is retried after `reconnect.delay_s` (honouring the
        server's hint), anything else too."""
        if self.session is None:
            connector = aiohttp.TCPConnector(limit=0, force_close=False)
            self.session = aiohttp.ClientSession(connector=connector)
        session = self.session
        hello_s: list[float] = []
        served_s: list[float] = []
        counts = {"refused": 0, "errors": 0, "failed": 0}
        start = time.monotonic()

        async def one(k: int, token: str) -> None:
            slot = start + k / rate
            await asyncio.sleep(max(0.0, slot - time.monotonic()))
            for attempt in range(RECONNECT_ATTEMPTS):
                hint = 0.0
                ws: aiohttp.ClientWebSocketResponse | None = None
                try:
                    ws = await session.ws_connect(
                        url, headers={"Authorization": f"Bearer {token}"}, heartbeat=None
                    )
                    upgraded = time.monotonic()
                    msg = await ws.receive(timeout=60)
                    if msg.type is aiohttp.WSMsgType.TEXT and '"hello"' in msg.data:
                        await ws.send_str(_ONLINE)  # as an artisan's app does once welcomed
                        now = time.monotonic()
                        hello_s.append(now - upgraded)
                        served_s.append(now - slot)
                        self.sockets.append(ws)
                        self.positions.append(
                            (
                                _CENTER[0] + random.uniform(-0.1, 0.1),
                                _CENTER[1] + random.uniform(-0.1, 0.1),
                            )
                        )
                        self.readers.append(asyncio.create_task(self._drain(ws)))
                        return
                    if msg.type is aiohttp.WSMsgType.CLOSE and msg.data == _TRY_AGAIN_LATER:
                        counts["refused"] += 1
                        hint = reconnect.hint_from_close_reason(msg.extra)
                    else:
                        counts["errors"] += 1
                except aiohttp.WSServerHandshakeError as exc:
                    if exc.status == 503:
                        counts["refused"] += 1
                        hint = reconnect.hint_from_headers(dict(exc.headers or {}))
                    else:
                        counts["errors"] += 1
                except (aiohttp.ClientError, OSError, TimeoutError):
                    counts["errors"] += 1
                if ws is not None:  # upgraded, but not welcomed: not kept
                    await ws.close()
                if attempt + 1 < RECONNECT_ATTEMPTS:
                    await asyncio.sleep(reconnect.delay_s(attempt, hint))
            counts["failed"] += 1

        lag_s: list[float] = []

        async def sample_lag() -> None:
            # This process's own lateness: a hello read late by a busy generator is not
            # the server's (each 10-ms timer's delay past its due time).
            while True:
                due = time.monotonic() + 0.01
                await asyncio.sleep(0.01)
                lag_s.append(time.monotonic() - due)

        sampler = asyncio.create_task(sample_lag())
        await asyncio.gather(*(one(k, t) for k, t in enumerate(tokens)))
        sampler.cancel()
        return {"hello_s": hello_s, "served_s": served_s, "loop_lag_s": lag_s, **counts}

    def _frame(self, i: int, step_deg: float) -> str:
        lat, lon = self.positions[i]
        if step_deg:
            lat += step_deg
            self.positions[i] = (lat, lon)
        return (
            f'{{"type":"location","lat":{lat:.7f},"lon":{lon:.7f},"ts":{int(time.time() * 1000)}}}'
        )

    async def rate(
        self, hz: float, seconds: float, active: int, step_m: float = DEFAULT_STEP_M
    ) -> dict[str, Any]:
        socks = self.sockets[:active]
        step_deg = step_m / METRES_PER_DEGREE
        tick = 0.01
        per_second = int(len(socks) * hz)
        sent = 0
        start = time.monotonic()
        n_ticks = int(seconds / tick)
        for k in range(n_ticks):
            target = start + k * tick
            delay = target - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            lo = (k * per_second * tick) // 1
            hi = ((k + 1) * per_second * tick) // 1
            for j in range(int(lo), int(hi)):
                i = j % len(socks)
                try:
                    await socks[i].send_str(self._frame(i, step_deg))
                    sent += 1
                except (ConnectionError, RuntimeError):
                    self.errors += 1
        return {"sent": sent, "elapsed": time.monotonic() - start, "errors": self.errors}

    async def flat(self, seconds: float, active: int) -> dict[str, Any]:
        socks = self.sockets[:active]
        sent = 0
        start = time.monotonic()
        deadline = start + seconds
        while time.monotonic() < deadline:
            for i, ws in enumerate(socks):
                try:
                    await ws.send_str(self._frame(i, 0.0))
                    sent += 1
                except (ConnectionError, RuntimeError):
                    self.errors += 1
            await asyncio.sleep(0)
        return {"sent": sent, "elapsed": time.monotonic() - start, "errors": self.errors}

    async def close(self) -> dict[str, Any]:
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)
        if self.session is not None:
            await self.session.close()
        self.sockets.clear()
        return {"closed": True}


def run_worker(conn: Connection) -> None:
    # SIGTERM when the bench dies (preexec_fn has no multiprocessing equivalent); the
    # bench starts its workers from its main thread (bench_gateway.Workers).
    parent = multiprocessing.parent_process()
    die_with_parent(parent.pid if parent is not None else None)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    async def serve() -> None:
        worker = Worker()
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            name, *args = command
            result = await getattr(worker, name)(*args)
            conn.send(result)
            if name == "close":
                return

    uvloop.run(serve())
