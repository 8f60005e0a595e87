"""ZENDO_MAX_SOCKETS_PER_USER (CONTRACT §8a): a new socket past the cap closes the
user's oldest with 4409, on whichever process holds it; other users are not affected."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from core import appkeys, redis_keys
from core.settings import Settings
from gateway import socket_cap
from gateway.session import CLOSE_REPLACED
from gateway.socket_cap import SocketCap
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


class _Socket:
    """What SocketCap reads of a session, and what closing it records."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.sid = ""
        self.closed_with: int | None = None

    def close_soon(self, code: int, _reason: str) -> None:
        self.closed_with = code


def _counting_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the socket cap's script calls (and their rows) while they still run."""
    calls: list[int] = []
    script = socket_cap.APPLY

    async def counted(redis: Redis, args: list[Any], keys: tuple[str, ...] = ()) -> Any:
        calls.append(str(args[-1]).count("\n"))
        return await script(redis, args, keys)

    monkeypatch.setattr(socket_cap, "APPLY", counted)
    return calls


def _cap(redis: Redis, local: dict[str, set[_Socket]]) -> SocketCap:
    return SocketCap(lambda: redis, node_id="node-a", cap=3, local=local.get)  # type: ignore[arg-type]


async def test_a_storm_of_opens_and_closes_is_a_few_calls_applied_in_order(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _counting_calls(monkeypatch)
    local: dict[str, set[_Socket]] = {}
    cap = _cap(redis, local)
    users = [f"user-{i}" for i in range(1000)]
    sockets = {u: [_Socket(u) for _ in range(3)] for u in users}
    for user_id, mine in sockets.items():
        local[user_id] = set(mine)
        for s in mine:
            cap.opened(s)  # type: ignore[arg-type]
        cap.closed(mine[0])  # type: ignore[arg-type]
    # A socket opened and closed within one batch leaves nothing behind.
    brief = _Socket("brief")
    cap.opened(brief)  # type: ignore[arg-type]
    cap.closed(brief)  # type: ignore[arg-type]
    await cap.stop()
    assert sum(calls) == 4002 and len(calls) == 5  # 1,000 rows per call
    for user_id in users[:20]:
        members = await redis.zrange(redis_keys.user_sockets(user_id), 0, -1)
        assert members == [f"node-a|{s.sid}" for s in sockets[user_id][1:]]
    assert await redis.exists(redis_keys.user_sockets("brief")) == 0
    assert all(s.closed_with is None for mine in sockets.values() for s in mine)


async def test_a_fourth_open_in_the_same_batch_closes_the_oldest(redis: Redis) -> None:
    local: dict[str, set[_Socket]] = {}
    cap = _cap(redis, local)
    mine = [_Socket("u") for _ in range(4)]
    local["u"] = set(mine)
    for s in mine:
        cap.opened(s)  # type: ignore[arg-type]
        await asyncio.sleep(0.002)  # distinct opening times, one batch
    await cap.stop()
    assert [s.closed_with for s in mine] == [CLOSE_REPLACED, None, None, None]
    assert await redis.zcard(redis_keys.user_sockets("u")) == 3
