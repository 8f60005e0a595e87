"""A VERIFIED artisan who changes trade goes back to PENDING review (issue 18): off the
map at once, and no presence frame puts them back ONLINE."""

from __future__ import annotations

from typing import cast

import asyncpg
from redis.asyncio import Redis

from core import appkeys, redis_keys
from core.settings import Settings
from tests.factories import bearer
from tests.gateway.conftest import MakeClient, connect, eventually, fix, new_artisan, recv_type
from tests.helpers import live_state_written


async def _status(redis: Redis, aid: str) -> str | None:
    status = await redis.hget(redis_keys.live_artisan(aid), "current_status")
    return cast("str | None", status)  # decoded replies


async def test_a_specialty_change_takes_a_verified_artisan_off_the_map(
    make_client: MakeClient, db: asyncpg.Connection, gw_settings: Settings
) -> None:
    client = await make_client()
    redis = client.app[appkeys.REDIS]
    artisan, token = await new_artisan(db, gw_settings)
    aid = str(artisan)
    ws = await connect(client, token)
    await ws.send_json(fix())
    await eventually(lambda: _is_online(redis, aid))
    resp = await client.patch(
        "/artisan/profile", json={"specialty": "GLAZIER"}, headers=bearer(token)
    )
    assert resp.status == 200
    assert (await resp.json())["status"] == "PENDING"
    await live_state_written(client.app)
    assert await _status(redis, aid) == "OFFLINE"
    assert await redis.geopos(redis_keys.geo_online("PLUMBER"), aid) == [None]
    assert await redis.geopos(redis_keys.geo_online("GLAZIER"), aid) == [None]
    await ws.send_json({"type": "presence", "status": "ONLINE"})
    assert (await recv_type(ws, "presence"))["status"] == "OFFLINE"
    await ws.close()


async def _is_online(redis: Redis, aid: str) -> bool:
    return await _status(redis, aid) == "ONLINE"
