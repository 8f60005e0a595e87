"""PostgreSQL going away under load (a restart, a failover) answers 503, never 500.

The app reaches PostgreSQL through a TCP relay the test owns; "restarting" the relay
drops every connection and refuses new ones for a while, as a restarting server does,
without touching the PostgreSQL other tests share.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlparse

import pytest
from aiohttp.test_utils import TestClient

from core.settings import Settings
from tests.conftest import TEST_DATABASE_URL
from tests.factories import bearer
from tests.helpers import register
from tests.ports import free_port

PG_HOST, PG_PORT = "127.0.0.1", 5432


class Relay:
    """A TCP relay to PostgreSQL that can be stopped and started on the same port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.transport.abort()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(PG_HOST, PG_PORT)
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(pipe(src, dst))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)


@pytest.fixture
async def relay() -> AsyncIterator[Relay]:
    relay = Relay(free_port())
    await relay.start()
    try:
        yield relay
    finally:
        with contextlib.suppress(Exception):
            await relay.stop()


async def test_postgresql_restart_answers_503_not_500(
    settings: Settings,
    clean_state: None,
    relay: Relay,
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    from zendo.app import create_app

    dbname = urlparse(TEST_DATABASE_URL).path.lstrip("/")
    dsn = f"postgresql://{PG_HOST}:{relay.port}/{dbname}"
    app = create_app(settings.replace(database_url=dsn, run_background=False))
    client = await aiohttp_client(app)
    token = (await register(client, email="load@example.com"))["access_token"]

    codes: list[str] = []

    async def me() -> int:
        async with client.get("/auth/me", headers=bearer(token)) as resp:
            if resp.status != 200:
                assert resp.content_type == "application/problem+json"
                body = await resp.json()
                # (or shed by admission while the failing requests slowed it down)
                assert body["code"] in ("unavailable", "overloaded"), body
                assert "Retry-After" in resp.headers
                codes.append(body["code"])
            return resp.status

    assert set(await asyncio.gather(*(me() for _ in range(20)))) == {200}
    load = asyncio.gather(*(me() for _ in range(40)))
    await relay.stop()  # connections in use and idle ones all drop
    during = await load
    after_stop = await asyncio.gather(*(me() for _ in range(20)))  # refused connections
    statuses = set(during) | set(after_stop)
    assert statuses <= {200, 503}, statuses
    assert set(after_stop) == {503}
    assert "unavailable" in codes  # PostgreSQL's failures themselves, not only shedding
    await relay.start()
    recovered: list[int] = []
    for _ in range(50):
        recovered = await asyncio.gather(*(me() for _ in range(5)))
        if set(recovered) == {200}:
            break
        assert set(recovered) <= {200, 503}
        await asyncio.sleep(0.1)
    assert set(recovered) == {200}
