"""ZENDO_MAX_SOCKETS_PER_USER (CONTRACT §8a): a new socket past the cap closes the
user's oldest with 4409, on whichever process holds it; other users are not affected."""

from __future__ import annotations

import asyncio

import asyncpg
from redis.asyncio import Redis

from core import appkeys, redis_keys
from core.settings import Settings
from gateway.session import CLOSE_REPLACED
from tests.gateway.conftest import MakeClient, connect, eventually, new_user, recv_close


async def test_a_fourth_socket_closes_the_oldest(
    make_client: MakeClient, db: asyncpg.Connection, gw_settings: Settings
) -> None:
    gw = await make_client()
    user_id, token = await new_user(db, gw_settings)
    _other_id, other_token = await new_user(db, gw_settings)
    others = [await connect(gw, other_token) for _ in range(3)]
    sockets = []
    for _ in range(3):
        sockets.append(await connect(gw, token))
        await asyncio.sleep(0.01)  # distinct opening times
    redis = gw.app[appkeys.REDIS]
    key = redis_keys.user_sockets(str(user_id))
    await eventually(lambda: _count(redis, key, 3))
    newest = await connect(gw, token)
    assert await recv_close(sockets[0]) == CLOSE_REPLACED
    # The others, the newest and the other user's sockets stay open.
    for ws in (*sockets[1:], newest, *others):
        await ws.send_json({"type": "presence", "status": "ONLINE"})
        reply = await ws.receive_json(timeout=3)
        assert reply["type"] == "error" and reply["code"] == "forbidden"
    await sockets[1].close()
    await eventually(lambda: _count(redis, key, 2))


async def test_the_oldest_is_closed_on_another_process(
    make_client: MakeClient, db: asyncpg.Connection, gw_settings: Settings
) -> None:
    first = await make_client()
    second = await make_client()
    _user_id, token = await new_user(db, gw_settings)
    oldest = await connect(first, token)
    await asyncio.sleep(0.05)
    newer = [await connect(second, token) for _ in range(3)]
    assert await recv_close(oldest) == CLOSE_REPLACED
    assert all(not ws.closed for ws in newer)


async def _count(redis: Redis, key: str, wanted: int) -> bool:
    return int(await redis.zcard(key)) == wanted
