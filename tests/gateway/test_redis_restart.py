"""A Redis restart (data lost) while sockets are open: no socket is dropped, the flusher,
the pub/sub listener and the mirror reconnect, and the live state is re-hydrated."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from core import appkeys
from core.settings import Settings
from gateway import appkeys as gateway_keys
from gateway import live
from gateway.mirror import get_index
from tests.gateway.conftest import (
    MakeClient,
    connect,
    eventually,
    fix,
    new_artisan,
    new_user,
    now_ms,
    recv_type,
)
from tests.gateway.processes import start_redis, stop, wait_redis
from tests.ports import free_port


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    port = free_port()
    state: dict[str, Any] = {"port": port, "proc": start_redis(port, tmp_path / "redis.log")}
    await wait_redis(port)
    try:
        yield state
    finally:
        stop(state["proc"], signal.SIGKILL)


async def test_redis_restart_keeps_sockets_and_resumes(
    make_client: MakeClient,
    private_redis: dict[str, Any],
    db: asyncpg.Connection,
    gw_settings: Settings,
    tmp_path: Path,
) -> None:
    url = f"redis://127.0.0.1:{private_redis['port']}/0"
    holder = await make_client(redis_url=url)
    other = await make_client(redis_url=url)  # a second process-like app on the same Redis
    artisan_id, artisan_token = await new_artisan(db, gw_settings)
    client_id, client_token = await new_user(db, gw_settings)
    artisan = await connect(holder, artisan_token)
    client = await connect(holder, client_token)
    redis = holder.app[appkeys.REDIS]
    # Stamped 2 s ago, so the next fix 1.1 m away is a walk, not a jump (`too_fast`),
    # however soon it follows.
    await artisan.send_json(fix(48.86, 2.35, now_ms() - 2000))

    async def online() -> bool:
        state = await live.read_live(redis, artisan_id)
        return state is not None and state["current_status"] == "ONLINE"

    await eventually(online)

    stop(private_redis["proc"], signal.SIGKILL)
    await artisan.send_json(fix(48.86001, 2.35, now_ms()))  # flush fails, is kept and retried
    await asyncio.sleep(0.5)
    for ws in (artisan, client):
        await ws.send_json({"type": "bogus"})
        assert (await recv_type(ws, "error"))["code"] == "unknown_type"  # still served

    private_redis["proc"] = start_redis(private_redis["port"], tmp_path / "redis.log")
    await wait_redis(private_redis["port"])

    async def fresh_fix_online() -> bool:
        await artisan.send_json(fix(48.86002, 2.35, now_ms()))
        return await online()

    await eventually(fresh_fix_online, within=10.0, interval=0.3)

    # the other app's mirror rebuilt/followed the restarted Redis
    async def mirrored() -> bool:
        record = get_index(other.app).get(str(artisan_id))
        return record is not None and record.status == "ONLINE"

    await eventually(mirrored, within=10.0)
    # a frame from the other app crosses through the re-subscribed channel
    frame = {"type": "intervention.status", "intervention": {"id": str(uuid.uuid4())}}

    async def delivered() -> bool:
        await other.app[appkeys.NOTIFIER].notify(client_id, frame)
        try:
            got = await recv_type(client, "intervention.status", within=0.5)
        except AssertionError:
            return False
        return got == frame

    await eventually(delivered, within=10.0, interval=0.1)
    assert not artisan.closed and not client.closed
    assert holder.app[gateway_keys.GATEWAY].stats()["sessions"] == 2
    await artisan.close()
    await client.close()
