"""The benchmarks' scratch database: named in the URL, created and migrated when missing
or never migrated (as `make db` does) instead of failing on the first connection or
TRUNCATE, on the same server as the URL's."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from redis.asyncio import Redis

from benchmarks.bench_gateway import seed
from benchmarks.scratch_db import database_url, ensure_database, maintenance_dsn, truncate
from dispatch.migrate import discover
from tests.conftest import TEST_REDIS_URL


@pytest.fixture
async def scratch_name() -> AsyncIterator[str]:
    name = f"zendo_scratch_{uuid.uuid4().hex[:8]}"
    yield name
    admin = await asyncpg.connect("postgresql:///postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _applied(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT filename FROM schema_migrations ORDER BY 1")
    finally:
        await conn.close()
    return [r["filename"] for r in rows]


def test_the_maintenance_database_is_on_the_same_server() -> None:
    dsn = "postgresql://bench@db.example:5433/zendo_cost?sslmode=disable"
    assert maintenance_dsn(dsn) == "postgresql://bench@db.example:5433/postgres?sslmode=disable"


async def test_a_missing_database_is_created_and_migrated(scratch_name: str) -> None:
    dsn = f"postgresql:///{scratch_name}"
    await ensure_database(dsn)
    assert await _applied(dsn) == [m.name for m in discover()]
    await ensure_database(dsn)  # a second run finds it ready and changes nothing
    assert await _applied(dsn) == [m.name for m in discover()]


async def test_an_empty_database_is_migrated_then_truncated(scratch_name: str) -> None:
    admin = await asyncpg.connect("postgresql:///postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{scratch_name}"')
    finally:
        await admin.close()
    dsn = f"postgresql:///{scratch_name}"
    await ensure_database(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO users (id, email, password_hash, role) VALUES ($1, $2, 'x', 'CLIENT')",
            uuid.uuid4(),
            "cost-db@bench.zendo.test",
        )
        await truncate(conn)
        assert await conn.fetchval("SELECT count(*) FROM users") == 0
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(discover())
    finally:
        await conn.close()


async def test_the_gateway_benchmarks_seed_a_database_that_did_not_exist(
    scratch_name: str, clean_state: None
) -> None:
    redis = Redis.from_url(TEST_REDIS_URL)
    await redis.set("left:over", "1")
    dsn = f"postgresql:///{scratch_name}"
    artisans, admin = await seed(dsn, TEST_REDIS_URL, 3)
    conn = await asyncpg.connect(dsn)
    try:
        applied = await conn.fetchval("SELECT count(*) FROM schema_migrations")
        roles = await conn.fetch("SELECT role, count(*) AS n FROM users GROUP BY role ORDER BY 1")
        verified = await conn.fetchval(
            "SELECT count(*) FROM artisans WHERE status = 'VERIFIED' AND user_id = ANY($1)",
            artisans,
        )
    finally:
        await conn.close()
    assert applied == len(discover())
    assert [(r["role"], r["n"]) for r in roles] == [("ADMIN", 1), ("ARTISAN", 3)]
    assert verified == 3 and isinstance(admin, uuid.UUID)
    assert await redis.exists("left:over") == 0  # its Redis db starts empty
    await redis.aclose()
    await seed(dsn, TEST_REDIS_URL, 2)  # a second run reuses the database, emptied
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM users WHERE role = 'ARTISAN'") == 2
    finally:
        await conn.close()


@pytest.mark.parametrize("url", ["postgresql://", "postgresql://localhost:5432", "postgresql:///"])
def test_a_url_without_a_database_is_refused(url: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="name the database in the URL"):
        database_url(url)


def test_a_url_naming_a_database_passes_through() -> None:
    url = "postgresql://bench@db.example:5433/zendo_storm?sslmode=disable"
    assert database_url(url) == url
