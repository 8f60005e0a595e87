"""Shared fixtures: real PostgreSQL (database zendo_test) and real Redis (db 1).

The test database is created and migrated by `make test`; each test that uses
`app`/`client` starts from empty tables and an empty Redis db.

Fixtures shared by every folder live here; a folder's conftest.py holds only what is
its own. Helpers: tests/factories.py (rows straight into the database), tests/helpers.py
(register, log in, upload over HTTP), tests/world.py (the dispatch test world).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from core.settings import Settings
from tests.helpers import StartApp
from tests.ports import free_port

if TYPE_CHECKING:
    from tests.world import World

TEST_DATABASE_URL = os.environ.get("ZENDO_TEST_DATABASE_URL", "postgresql:///zendo_test")
TEST_REDIS_URL = os.environ.get("ZENDO_TEST_REDIS_URL", "redis://127.0.0.1:6379/1")
# Tables whose rows are reference data, kept between tests.
_KEEP_TABLES = {"schema_migrations", "specialty_prices", "spatial_ref_sys"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=TEST_DATABASE_URL,
        redis_url=TEST_REDIS_URL,
        jwt_secret="test-secret-" + "x" * 40,
        bcrypt_rounds=10,
        cors_origins=("http://localhost:3000",),
        state_dir=tmp_path / ".zendo",
        offer_timeout_s=2.0,
    )


async def reset_state(
    database_url: str = TEST_DATABASE_URL, redis_url: str = TEST_REDIS_URL
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        tables = [
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            if r["tablename"] not in _KEEP_TABLES
        ]
        if tables:
            await conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()
    redis = Redis.from_url(redis_url)
    try:
        await redis.flushdb()
    finally:
        await redis.aclose()


@pytest.fixture
async def clean_state() -> None:
    await reset_state()


@pytest.fixture
async def app(settings: Settings, clean_state: None) -> web.Application:
    from zendo.app import create_app

    return create_app(settings)


@pytest.fixture
async def client(
    app: web.Application, aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]]
) -> AsyncIterator[TestClient[Any, Any]]:
    yield await aiohttp_client(app)


@pytest.fixture
async def db(clean_state: None) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(TEST_DATABASE_URL)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def redis(clean_state: None) -> AsyncIterator[Redis]:
    client = Redis.from_url(TEST_REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def start_app(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]], clean_state: None
) -> StartApp:
    """Start the app with `settings` on a free port that its public_base_url names."""

    async def start(settings: Settings) -> TestClient[Any, Any]:
        from zendo.app import create_app

        port = free_port()
        # No background loops (dispatcher, mirrors): these tests drive payments directly.
        app = create_app(
            settings.replace(public_base_url=f"http://127.0.0.1:{port}", run_background=False)
        )
        return await aiohttp_client(app, server_kwargs={"port": port})

    return start


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client without any login, like a browser following a link."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def world(
    settings: Settings,
    clean_state: None,
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> AsyncIterator[World]:
    """The app with a `FrameRecorder` as its notifier and a fast dispatcher, with its
    client and a DB connection (see tests/world.py)."""
    from tests.world import FrameRecorder, World, build_app

    recorder = FrameRecorder()
    app = build_app(settings, recorder)
    client = await aiohttp_client(app)
    conn = await asyncpg.connect(TEST_DATABASE_URL)
    try:
        yield World(app, client, conn, settings, recorder)
    finally:
        await conn.close()
