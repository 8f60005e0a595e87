"""`bench_cost`'s set-up: the scratch databases it is named, missing or never migrated,
are made ready (as `make db` does) instead of failing on the first TRUNCATE, and bad
arguments are refused with a usage message."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from benchmarks.bench_cost import parse
from benchmarks.cost.seed import bare_dsn
from benchmarks.scratch_db import ensure_database, maintenance_dsn, truncate
from dispatch.migrate import discover


@pytest.fixture
async def scratch_name() -> AsyncIterator[str]:
    name = f"zendo_cost_{uuid.uuid4().hex[:8]}"
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


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--hz", "0"], "argument --hz: must be positive"),
        (["--rounds", "-1"], "argument --rounds: must be at least 1"),
        (["--sockets", "1"], "--sockets must be at least 2"),
        (["--server-workers", "0"], "argument --server-workers: must be at least 1"),
        (["--database-url", "postgresql://"], "name the database in the URL"),
        (["--bare-database-url", "postgresql://localhost"], "name the database in the URL"),
    ],
)
def test_bad_arguments_are_refused_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        parse(argv)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def test_the_bare_handlers_database_defaults_to_one_beside_the_servers() -> None:
    args = parse(["--database-url", "postgresql:///zendo_cost_x", "--quick"])
    assert args.bare_database_url == "postgresql:///zendo_cost_x_bare"
    assert args.sockets == 400 and args.rounds == 2


@pytest.mark.parametrize(
    ("dsn", "bare"),
    [
        ("postgresql:///zendo_cost", "postgresql:///zendo_cost_bare"),
        (
            "postgresql://u:p@db:5433/c?sslmode=disable",
            "postgresql://u:p@db:5433/c_bare?sslmode=disable",
        ),
    ],
)
def test_the_bare_database_keeps_the_servers_address(dsn: str, bare: str) -> None:
    assert bare_dsn(dsn) == bare
