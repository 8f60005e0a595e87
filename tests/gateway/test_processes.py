"""Two real gateway processes against one Redis: frames cross processes, a user with
sockets on both gets a frame on both, and users of a killed process reconnect to the
other and get their frames."""

from __future__ import annotations

import signal
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from redis.asyncio import Redis

from core.settings import Settings
from gateway import tracking
from tests.factories import bearer
from tests.gateway.conftest import fix, new_artisan, new_user, now_ms, recv_type
from tests.gateway.processes import start_server, stop, wait_healthy
from tests.ports import free_port


@pytest.fixture
async def two_servers(
    gw_settings: Settings, clean_state: None, tmp_path: Path
) -> AsyncIterator[tuple[list[int], list[subprocess.Popen[bytes]]]]:
    ports = [free_port(), free_port()]
    procs = [start_server(gw_settings, p, tmp_path / f"server-{p}.log") for p in ports]
    try:
        for port in ports:
            await wait_healthy(port)
        yield ports, procs
    finally:
        for proc in procs:
            stop(proc)


async def _ws(
    session: aiohttp.ClientSession, port: int, token: str
) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(f"http://127.0.0.1:{port}/ws", headers=bearer(token))
    await recv_type(ws, "hello")
    return ws


async def test_frames_cross_processes_and_reach_every_socket(
    two_servers: tuple[list[int], list[subprocess.Popen[bytes]]],
    db: asyncpg.Connection,
    gw_settings: Settings,
) -> None:
    (port_a, port_b), _procs = two_servers
    artisan_id, artisan_token = await new_artisan(db, gw_settings)
    client_id, client_token = await new_user(db, gw_settings)
    redis = Redis.from_url(gw_settings.redis_url, decode_responses=True)
    intervention_id = uuid.uuid4()
    try:
        await tracking.start_tracking(
            redis,
            artisan_id=artisan_id,
            intervention_id=intervention_id,
            client_id=client_id,
            job_lat=48.87,
            job_lon=2.35,
        )
        async with aiohttp.ClientSession() as session:
            artisan = await _ws(session, port_a, artisan_token)
            on_b = await _ws(session, port_b, client_token)
            on_a = await _ws(session, port_a, client_token)
            ts = now_ms()
            # The fix is accepted by process A, which notifies the client: their socket
            # on B gets it through B's channel, their socket on A locally.
            await artisan.send_json(fix(48.86, 2.35, ts))
            for ws in (on_b, on_a):
                frame = await recv_type(ws, "artisan.location")
                assert frame["intervention_id"] == str(intervention_id)
                assert frame["ts"] == ts
            for ws in (artisan, on_a, on_b):
                await ws.close()
    finally:
        await redis.aclose()


async def test_users_of_a_killed_process_reconnect_to_the_other_and_get_frames(
    two_servers: tuple[list[int], list[subprocess.Popen[bytes]]],
    db: asyncpg.Connection,
    gw_settings: Settings,
) -> None:
    (port_a, port_b), procs = two_servers
    artisan_id, artisan_token = await new_artisan(db, gw_settings)
    client_id, client_token = await new_user(db, gw_settings)
    redis = Redis.from_url(gw_settings.redis_url, decode_responses=True)
    try:
        await tracking.start_tracking(
            redis,
            artisan_id=artisan_id,
            intervention_id=uuid.uuid4(),
            client_id=client_id,
            job_lat=48.87,
            job_lon=2.35,
        )
        async with aiohttp.ClientSession() as session:
            artisan = await _ws(session, port_a, artisan_token)
            client = await _ws(session, port_b, client_token)
            ts = now_ms()
            await artisan.send_json(fix(48.86, 2.35, ts))
            assert (await recv_type(client, "artisan.location"))["ts"] == ts

            procs[1].send_signal(signal.SIGKILL)  # process B dies without any cleanup
            procs[1].wait(timeout=10)
            msg = await client.receive(timeout=5)
            assert msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            )

            client = await _ws(session, port_a, client_token)  # reconnect to A
            await artisan.send_json(fix(48.8601, 2.35, ts + 1000))
            frame = await recv_type(client, "artisan.location")
            assert frame["ts"] == ts + 1000
            await artisan.close()
            await client.close()
    finally:
        await redis.aclose()
