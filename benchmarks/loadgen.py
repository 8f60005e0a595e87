"""Asyncio WebSocket load generator: one worker process holds a slice of the sockets.

The parent drives workers through a Pipe with commands:
  ("connect", url, tokens)         open one socket per token (Bearer), wait for hello
  ("rate", hz, seconds, active)    `active` sockets each send `hz` fixes/s (spread evenly)
  ("flat", seconds, active)        `active` sockets send as fast as the loop allows
  ("close",)                       close everything and exit
Each answers with a dict (counts, errors).
"""

from __future__ import annotations

import asyncio
import random
import resource
import time
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
import uvloop

_CENTER = (48.8566, 2.3522)


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
        assert self.session is not None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with sem:
            for _attempt in range(5):
                try:
                    ws = await self.session.ws_connect(url, headers=headers, heartbeat=None)
                    break
                except (aiohttp.ClientError, OSError):
                    await asyncio.sleep(0.2)
            else:
                return False
            if token:
                await ws.receive(timeout=30)  # hello
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

    def _frame(self, i: int, move: bool) -> str:
        lat, lon = self.positions[i]
        if move:  # ~1 m per fix: a walking pace, never "too fast"
            lat += 0.00001
            self.positions[i] = (lat, lon)
        return (
            f'{{"type":"location","lat":{lat:.7f},"lon":{lon:.7f},"ts":{int(time.time() * 1000)}}}'
        )

    async def rate(self, hz: float, seconds: float, active: int) -> dict[str, Any]:
        socks = self.sockets[:active]
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
                    await socks[i].send_str(self._frame(i, move=True))
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
                    await ws.send_str(self._frame(i, move=False))
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
