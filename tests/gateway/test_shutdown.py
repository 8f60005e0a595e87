"""Graceful shutdown is bounded: a process holding a few hundred sockets closes them all
at once (1001), aborts those whose peer does not answer, cleans up the registry in a
batch and exits within seconds (aiohttp alone waits for every WebSocket handler)."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg
from redis.asyncio import Redis

from core import redis_keys
from core.settings import Settings
from tests.factories import bearer, token_for
from tests.gateway.conftest import new_artisan, now_ms
from tests.gateway.processes import start_server, stop, wait_healthy
from tests.ports import free_port

READING = 300  # clients that read (they answer the close handshake)
SILENT = 40  # clients that never read: the server must give up on them


async def test_server_with_hundreds_of_sockets_shuts_down_quickly_and_cleans_up(
    clean_state: None, gw_settings: Settings, db: asyncpg.Connection, tmp_path: Path
) -> None:
    port = free_port()
    # The registry TTL is the default 30 s: announced leases reach now + 30 s + grace (30 s).
    proc = start_server(gw_settings, port, tmp_path / "server.log", ZENDO_GW_SHUTDOWN_CLOSE_S="1")
    redis = Redis.from_url(gw_settings.redis_url, decode_responses=True)
    connector = aiohttp.TCPConnector(limit=0)
    session = aiohttp.ClientSession(connector=connector)
    try:
        await wait_healthy(port)
        artisan_id, artisan_token = await new_artisan(db, gw_settings)
        clients = [uuid.uuid4() for _ in range(READING + SILENT - 1)]
        tokens = [artisan_token] + [token_for(gw_settings, c, "CLIENT") for c in clients]
        url = f"http://127.0.0.1:{port}/ws"
        sem = asyncio.Semaphore(100)

        async def open_one(token: str) -> aiohttp.ClientWebSocketResponse:
            async with sem:
                ws = await session.ws_connect(url, headers=bearer(token), heartbeat=None)
                assert (await ws.receive_json(timeout=10))["type"] == "hello"
                return ws

        sockets = await asyncio.gather(*(open_one(t) for t in tokens))
        reading, silent = sockets[:READING], sockets[READING:]
        node = (await redis.zrange(redis_keys.user_nodes(str(clients[0])), 0, -1))[0]

        async def close_code(ws: aiohttp.ClientWebSocketResponse) -> int | None:
            while True:
                msg = await ws.receive(timeout=15)
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    return ws.close_code
                if msg.type is aiohttp.WSMsgType.ERROR:
                    return None

        readers = [asyncio.create_task(close_code(ws)) for ws in reading]
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        while proc.poll() is None:
            assert time.monotonic() - started < 8, "shutdown took too long"
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
        codes = await asyncio.gather(*readers)

        assert proc.returncode == 0
        assert elapsed < 5, f"shutdown took {elapsed:.1f}s"
        assert codes.count(1001) >= READING - 5, codes  # a few may race the abort
        # One batched cleanup: no user keeps this node in the registry...
        for user in [artisan_id, *clients[:: len(clients) // 20]]:
            assert node not in await redis.zrange(redis_keys.user_nodes(str(user)), 0, -1)
        # ...and the artisan's offline grace (30 s) starts now, not after the registry TTL.
        lease = await redis.zscore(redis_keys.PRESENCE_LEASES, str(artisan_id))
        assert lease is not None and lease <= now_ms() + 30_000
        for ws in silent:
            assert not ws.closed or ws.close_code in (None, 1001, 1006)
    finally:
        stop(proc, signal.SIGKILL)
        await session.close()
        await redis.aclose()
