"""A write's answer goes out before its post-commit work (`core.outbox.answer_first`,
`zendo.middleware.answer_first_middleware`): that work is started, its first step run
(Redis gets its commands), and awaited once the answer is written; only the request's
own task defers, anything else applies inline as before."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from core import appkeys
from core.db import create_pool
from core.effects import LiveChange, MarkBusy
from core.outbox import Outbox, answer_first, commit
from core.redispool import commands_sent
from tests.conftest import TEST_DATABASE_URL
from zendo.middleware import answer_first_middleware, error_middleware

Client = TestClient[web.Request, web.Application]


class _GatedLiveState:
    """The live-state port, held at its Redis round trip until `release` is set."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.applied: list[list[LiveChange]] = []
        self.done = asyncio.Event()

    async def apply(
        self, changes: Sequence[LiveChange], publish: Sequence[tuple[uuid.UUID | str, bytes]] = ()
    ) -> None:
        self.started.set()
        commands_sent()  # as core.redispool.send_all does once its batch is written
        await self.release.wait()
        self.applied.append(list(changes))
        self.done.set()


@pytest.fixture
async def pool(clean_state: None) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(TEST_DATABASE_URL, min_size=1, max_size=2)
    yield pool
    await pool.close()


def _app(pool: asyncpg.Pool, live: _GatedLiveState) -> web.Application:
    app = web.Application()
    app[appkeys.PG_POOL] = pool
    app[appkeys.LIVE_STATE] = live
    return app


async def _busy(conn: asyncpg.Connection, outbox: Outbox) -> int:
    value: int = await conn.fetchval("SELECT 6 * 7")
    outbox.live.append(MarkBusy(uuid.uuid4(), 1))
    return value


async def test_commit_returns_with_the_apply_started_and_finish_awaits_it(
    pool: asyncpg.Pool,
) -> None:
    live = _GatedLiveState()
    app = _app(pool, live)
    answering = answer_first()
    result, _ = await commit(app, _busy, transaction=False)
    assert result == 42
    assert live.started.is_set()  # its commands went out before commit returned
    assert live.applied == []  # and it is still running
    finishing = asyncio.create_task(answering.finish())
    await asyncio.sleep(0.01)
    assert not finishing.done()  # finish waits for it
    live.release.set()
    await finishing
    assert len(live.applied) == 1


async def test_other_tasks_apply_inline_even_with_the_setting_inherited(
    pool: asyncpg.Pool,
) -> None:
    """A task started by the request (or a timer it armed) copies its context: its
    commits still wait for their apply, and finish() has nothing of theirs to await."""
    live = _GatedLiveState()
    live.release.set()
    app = _app(pool, live)
    answering = answer_first()
    await asyncio.create_task(commit(app, _busy))
    assert len(live.applied) == 1  # applied before the other task's commit returned
    assert answering.applies == []
    await answering.finish()
    await commit(app, _busy)  # after finish(): inline again in this task too
    assert len(live.applied) == 2 and answering.applies == []


async def test_without_the_setting_commit_waits_for_its_apply(pool: asyncpg.Pool) -> None:
    live = _GatedLiveState()
    app = _app(pool, live)
    task = asyncio.create_task(commit(app, _busy))
    await live.started.wait()
    await asyncio.sleep(0.01)
    assert not task.done()
    live.release.set()
    await task
    assert len(live.applied) == 1


async def test_a_cancelled_finish_cancels_the_applies(pool: asyncpg.Pool) -> None:
    """As cancelling a request cancelled its inline apply: nothing keeps running."""
    live = _GatedLiveState()
    app = _app(pool, live)
    answering = answer_first()
    await commit(app, _busy)
    (apply,) = answering.applies
    finishing = asyncio.create_task(answering.finish())
    await asyncio.sleep(0)
    finishing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await finishing
    assert apply.cancelled()
    assert live.applied == []


@pytest.fixture
async def http(pool: asyncpg.Pool) -> AsyncIterator[tuple[Client, _GatedLiveState]]:
    """An app with the two middlewares in zendo's order, routes that commit."""
    live = _GatedLiveState()
    app = _app(pool, live)
    app.middlewares.extend((answer_first_middleware, error_middleware))

    async def write(request: web.Request) -> web.Response:
        value, _ = await commit(request.app, _busy, transaction=False)
        return web.json_response({"value": value}, status=201)

    async def write_then_fail(request: web.Request) -> web.Response:
        await commit(request.app, _busy, transaction=False)
        raise web.HTTPConflict(text="after the commit")

    async def read(request: web.Request) -> web.Response:
        value, _ = await commit(request.app, _busy, transaction=False)
        return web.json_response({"value": value})

    app.router.add_post("/write", write)
    app.router.add_post("/fail", write_then_fail)
    app.router.add_get("/read", read)
    client: Client = TestClient(TestServer(app))
    await client.start_server()
    yield client, live
    live.release.set()
    await client.close()


async def test_a_write_is_answered_while_its_post_commit_work_runs(
    http: tuple[Client, _GatedLiveState],
) -> None:
    client, live = http
    async with asyncio.timeout(5):
        response = await client.post("/write")
        assert response.status == 201
        assert await response.json() == {"value": 42}  # the whole answer, body included
    assert live.started.is_set() and live.applied == []  # the live state still pending
    live.release.set()
    async with asyncio.timeout(5):
        await live.done.wait()
    assert len(live.applied) == 1


async def test_an_error_after_the_commit_is_answered_and_the_apply_still_runs(
    http: tuple[Client, _GatedLiveState],
) -> None:
    client, live = http
    async with asyncio.timeout(5):
        response = await client.post("/fail")
        assert response.status == 409
    live.release.set()
    async with asyncio.timeout(5):
        await live.done.wait()


async def test_a_read_waits_for_its_apply_before_answering(
    http: tuple[Client, _GatedLiveState],
) -> None:
    client, live = http
    request = asyncio.create_task(client.get("/read"))
    await live.started.wait()
    await asyncio.sleep(0.05)
    assert not request.done()  # not a write: inline, as before
    live.release.set()
    async with asyncio.timeout(5):
        response = await request
    assert response.status == 200 and len(live.applied) == 1
