"""The outbox: what runs while the connection is held, what runs after, and pushes
cancelled at shutdown that leave nothing half-made."""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from core import appkeys
from core.db import create_pool
from core.effects import LiveChange, MarkBusy
from core.outbox import Outbox, commit
from tests.conftest import TEST_DATABASE_URL


class _Notifier:
    def __init__(self, sockets_here: int = 1) -> None:
        self.sent: list[dict[str, Any]] = []
        self.published: list[bytes] = []
        self.sockets_here = sockets_here
        self.publishing = asyncio.Event()

    def deliver_here(self, user_id: uuid.UUID | str, frame: dict[str, Any]) -> tuple[bytes, int]:
        self.sent.append(frame)
        return b"frame", self.sockets_here

    async def publish_many(self, frames: Sequence[tuple[uuid.UUID | str, bytes]]) -> None:
        self.publishing.set()
        await asyncio.sleep(0)  # a real publish is a Redis round trip
        self.published += [data for _uid, data in frames]

    async def close_session(self, user_id: uuid.UUID | str, session_id: str) -> None:
        """No sockets in these tests."""


async def test_a_push_cancelled_before_it_starts_leaves_no_unawaited_coroutine() -> None:
    """Found as a rare teardown error: a dispatcher task cancelled at app shutdown while
    its pushes were under way left notify() coroutines that were never awaited (a
    RuntimeWarning when collected). Local deliveries happen before the first await; the
    cross-process publishes are what a cancellation can cut short."""
    app = web.Application()
    notifier = _Notifier()
    app[appkeys.NOTIFIER] = notifier
    effects = Outbox()
    for _ in range(3):
        effects.push(uuid.uuid4(), {"type": "offer.result"})
    task = asyncio.create_task(effects.apply(app))
    await notifier.publishing.wait()  # started, not finished
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    gc.collect()  # a never-awaited coroutine would warn here (an error under pytest)
    assert len(notifier.sent) == 3  # delivered before the first await
    assert notifier.published == []


async def test_pushes_reach_the_notifier() -> None:
    app = web.Application()
    notifier = _Notifier()
    app[appkeys.NOTIFIER] = notifier
    effects = Outbox()
    effects.push(uuid.uuid4(), {"type": "offer.result"})
    await effects.apply(app)
    assert notifier.sent == [{"type": "offer.result"}]
    assert notifier.published == [b"frame"]
    assert effects.pushed_at > 0


async def test_local_sockets_get_their_frames_before_the_first_await() -> None:
    """No loop turn between a commit and the local push: a task per frame used to cost
    one or two turns under load."""
    app = web.Application()
    notifier = _Notifier()
    app[appkeys.NOTIFIER] = notifier
    effects = Outbox()
    effects.push(uuid.uuid4(), {"type": "intervention.status"})
    task = asyncio.ensure_future(effects.apply(app))
    await asyncio.sleep(0)  # apply() has run up to its first await, no further
    assert notifier.sent == [{"type": "intervention.status"}]
    assert notifier.published == []
    await task
    assert notifier.published == [b"frame"]


async def test_frames_delivered_before_the_release_are_not_delivered_again() -> None:
    """A hot path hands its frames to local sockets while it still holds the connection
    (`deliver`), then applies the rest once the connection is back in the pool."""
    app = web.Application()
    notifier = _Notifier()
    app[appkeys.NOTIFIER] = notifier
    effects = Outbox()
    effects.push(uuid.uuid4(), {"type": "intervention.status"})
    effects.deliver(app)
    effects.deliver(app)
    assert notifier.sent == [{"type": "intervention.status"}]
    assert notifier.published == []  # the remote half waits for apply()
    await effects.apply(app)
    assert notifier.sent == [{"type": "intervention.status"}]
    assert notifier.published == [b"frame"]


async def test_a_push_is_timed_at_the_local_socket_or_once_the_other_nodes_have_it() -> None:
    app = web.Application()
    app[appkeys.NOTIFIER] = _Notifier(sockets_here=1)
    here = Outbox()
    here.push(uuid.uuid4(), {"type": "offer"})
    here.deliver(app)
    assert here.pushed_at > 0  # written to this process's socket: sent

    app[appkeys.NOTIFIER] = _Notifier(sockets_here=0)
    elsewhere = Outbox()
    elsewhere.push(uuid.uuid4(), {"type": "offer"})
    elsewhere.deliver(app)
    assert elsewhere.pushed_at == 0  # nobody here took it: not sent yet
    await elsewhere.apply(app)
    assert elsewhere.pushed_at > 0 and elsewhere.pushed_wall > 0


class _LiveState:
    def __init__(self) -> None:
        self.calls: list[tuple[list[LiveChange], list[tuple[uuid.UUID | str, bytes]]]] = []

    async def apply(
        self, changes: Sequence[LiveChange], publish: Sequence[tuple[uuid.UUID | str, bytes]] = ()
    ) -> None:
        await asyncio.sleep(0)  # a real apply is a Redis round trip
        self.calls.append((list(changes), list(publish)))


async def test_remote_pushes_and_live_state_share_one_call() -> None:
    """One Redis round trip for both halves of a commit that has both."""
    app = web.Application()
    notifier = _Notifier(sockets_here=0)
    live = _LiveState()
    app[appkeys.NOTIFIER] = notifier
    app[appkeys.LIVE_STATE] = live
    client, artisan = uuid.uuid4(), uuid.uuid4()
    effects = Outbox()
    effects.push(client, {"type": "intervention.status"})
    effects.live.append(MarkBusy(artisan, 7))
    await effects.apply(app)
    assert live.calls == [([MarkBusy(artisan, 7)], [(client, b"frame")])]
    assert notifier.published == []  # not a second round trip of its own
    assert effects.pushed_at > 0  # sent once the other nodes have it

    alone = Outbox()  # pushes only: the notifier's call
    alone.push(client, {"type": "offer"})
    await alone.apply(app)
    assert notifier.published == [b"frame"] and len(live.calls) == 1


@pytest.fixture
async def one_connection_pool(clean_state: None) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(TEST_DATABASE_URL, min_size=1, max_size=1)
    yield pool
    await pool.close()


class _PoolWatcher(_Notifier):
    """Records how many connections were idle when each frame reached a local socket."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__()
        self.pool = pool
        self.idle_at_delivery: list[int] = []

    def deliver_here(self, user_id: uuid.UUID | str, frame: dict[str, Any]) -> tuple[bytes, int]:
        self.idle_at_delivery.append(self.pool.get_idle_size())
        return super().deliver_here(user_id, frame)


@pytest.mark.parametrize("transaction", [True, False])
async def test_local_delivery_runs_while_the_connection_is_held_and_it_goes_back_unawaited(
    one_connection_pool: asyncpg.Pool, transaction: bool
) -> None:
    pool = one_connection_pool
    app = web.Application()
    app[appkeys.PG_POOL] = pool
    notifier = _PoolWatcher(pool)
    app[appkeys.NOTIFIER] = notifier

    async def work(conn: asyncpg.Connection, outbox: Outbox) -> int:
        value: int = await conn.fetchval("SELECT 41 + 1")
        outbox.push(uuid.uuid4(), {"type": "offer"})
        return value

    result, _ = await commit(app, work, transaction=transaction)
    assert result == 42
    assert notifier.idle_at_delivery == [0]  # delivered with the only connection still out
    assert notifier.published == [b"frame"]
    assert pool.get_idle_size() == 0  # the answer did not wait for the release
    # On its way back to the pool without anyone waiting for it: a few loop turns
    # later it is there, whatever the caller does meanwhile (nothing here).
    for _turn in range(10):
        if pool.get_idle_size() == 1:
            break
        await asyncio.sleep(0)
    assert pool.get_idle_size() == 1
    async with pool.acquire(timeout=0.5) as conn:
        assert await conn.fetchval("SELECT 1") == 1


class _BrokenNotifier(_Notifier):
    def deliver_here(self, user_id: uuid.UUID | str, frame: dict[str, Any]) -> tuple[bytes, int]:
        raise RuntimeError("a socket layer bug")


async def test_a_delivery_that_raises_still_gives_the_connection_back(
    one_connection_pool: asyncpg.Pool,
) -> None:
    pool = one_connection_pool
    app = web.Application()
    app[appkeys.PG_POOL] = pool
    app[appkeys.NOTIFIER] = _BrokenNotifier()

    async def work(conn: asyncpg.Connection, outbox: Outbox) -> int:
        outbox.push(uuid.uuid4(), {"type": "offer"})
        value: int = await conn.fetchval("SELECT 1")
        return value

    with pytest.raises(RuntimeError, match="socket layer"):
        await commit(app, work, transaction=False)
    async with pool.acquire(timeout=2) as conn:  # the only connection: not leaked
        assert await conn.fetchval("SELECT 2") == 2


async def test_a_failing_statement_delivers_nothing(one_connection_pool: asyncpg.Pool) -> None:
    app = web.Application()
    app[appkeys.PG_POOL] = one_connection_pool
    notifier = _Notifier()
    app[appkeys.NOTIFIER] = notifier

    async def work(conn: asyncpg.Connection, outbox: Outbox) -> object:
        outbox.push(uuid.uuid4(), {"type": "offer"})
        return await conn.fetchval("SELECT 1 / 0")

    with pytest.raises(asyncpg.DivisionByZeroError):
        await commit(app, work)
    assert notifier.sent == []
    assert notifier.published == []
    assert one_connection_pool.get_idle_size() == 1
