"""A burst of closing sockets is spread over loop iterations (`gateway.turns.PerTurn`):
a few go on per iteration, in order, a cancelled one takes no place, a lone one does
not even yield; through the gateway, every socket of a burst still gets its close
answered and leaves the registry."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from core import redis_keys
from core.settings import Settings
from gateway import appkeys as gateway_keys
from gateway import node
from gateway.turns import PerTurn
from tests.gateway.conftest import MakeClient, connect, eventually, fix, new_artisan


class Iterations:
    """Counts event-loop iterations: a callback that schedules itself once per iteration."""

    def __init__(self) -> None:
        self.count = 0
        self._loop = asyncio.get_running_loop()
        self._handle = self._loop.call_soon(self._tick)

    def _tick(self) -> None:
        self.count += 1
        self._handle = self._loop.call_soon(self._tick)

    def stop(self) -> None:
        self._handle.cancel()


async def test_a_burst_goes_a_few_per_iteration_in_order() -> None:
    gate = PerTurn(10)
    iterations = Iterations()
    released: list[tuple[int, int]] = []  # (caller, iteration it went on in)

    async def caller(i: int) -> None:
        await gate.wait()
        released.append((i, iterations.count))

    tasks = [asyncio.create_task(caller(i)) for i in range(100)]
    await asyncio.gather(*tasks)
    iterations.stop()
    assert [i for i, _ in released] == list(range(100))  # first come, first served
    per_iteration: dict[int, int] = {}
    for _, at in released:
        per_iteration[at] = per_iteration.get(at, 0) + 1
    assert max(per_iteration.values()) == 10
    assert len(per_iteration) == 10
    assert gate.waiting == 0


async def test_outside_a_burst_a_caller_goes_on_without_yielding() -> None:
    gate = PerTurn(3)
    ran: list[str] = []
    asyncio.get_running_loop().call_soon(ran.append, "other callback")
    for _ in range(3):
        await gate.wait()
    assert ran == []  # nothing suspended: the loop did not run in between
    await gate.wait()  # a fourth in the same iteration waits for a later one
    assert ran == ["other callback"]


async def test_a_cancelled_waiter_takes_no_place() -> None:
    gate = PerTurn(2)
    order: list[int] = []

    async def caller(i: int) -> None:
        await gate.wait()
        order.append(i)

    tasks = [asyncio.create_task(caller(i)) for i in range(6)]
    await asyncio.sleep(0)  # they started: two went on, four wait
    assert order == [0, 1] and gate.waiting == 4
    tasks[2].cancel()
    await asyncio.gather(*tasks[3:])
    assert order == [0, 1, 3, 4, 5]
    with pytest.raises(asyncio.CancelledError):
        await tasks[2]


def test_per_turn_must_let_someone_through() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        PerTurn(0)


def _fed(log: list[str], name: str) -> bool:
    log.append(name)
    return True


async def test_a_callback_turn_lets_its_share_through_and_the_rest_in_order_later() -> None:
    turns = PerTurn(2)
    fed: list[str] = []
    assert turns.admit() and turns.admit()
    assert not turns.admit()  # the share of this turn is spent
    for name in "abc":
        turns.hold(functools.partial(_fed, fed, name))
    assert turns.waiting == 3
    await asyncio.sleep(0)  # the next turn: two of them, first come first
    assert fed == ["a", "b"]
    assert not turns.admit()  # one still waits: nobody goes ahead of it
    await asyncio.sleep(0)
    assert fed == ["a", "b", "c"] and turns.waiting == 0
    await asyncio.sleep(0)
    assert turns.admit()  # outside a burst, a read goes through at once
    assert turns.held_total == 3


async def test_sockets_closing_together_all_get_their_close_answered_and_leave(
    make_client: MakeClient,
    db: asyncpg.Connection,
    gw_settings: Settings,
    redis: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(node, "CLOSES_PER_TURN", 2)  # 24 sockets: a burst of 12 iterations
    client: TestClient[Any, Any] = await make_client()
    gateway = client.app[gateway_keys.GATEWAY]
    artisans = [await new_artisan(db, gw_settings) for _ in range(24)]
    sockets = [await connect(client, token) for _, token in artisans]
    await sockets[0].send_json(fix())  # one of them online: its departure starts its grace
    assert len(gateway.sessions) == 24

    closed = await asyncio.gather(*(ws.close() for ws in sockets))
    assert all(closed)
    assert [ws.close_code for ws in sockets] == [1000] * 24  # each close answered

    async def all_gone() -> bool:
        return not gateway.sessions and gateway.closing.waiting == 0

    await eventually(all_gone)
    for user_id, _ in artisans:
        key = redis_keys.user_nodes(str(user_id))
        await eventually(functools.partial(_absent, redis, key))


async def _absent(redis: Redis, key: str) -> bool:
    return not await redis.exists(key)
