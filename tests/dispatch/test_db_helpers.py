"""`run_statement`: what runs while the connection is held, and what runs after."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from dispatch.db import create_pool, run_statement
from tests.conftest import TEST_DATABASE_URL


@pytest.fixture
async def one_connection_pool(clean_state: None) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(TEST_DATABASE_URL, min_size=1, max_size=1)
    yield pool
    await pool.close()


async def test_then_runs_while_the_connection_is_held_and_it_is_free_on_return(
    one_connection_pool: asyncpg.Pool,
) -> None:
    pool = one_connection_pool
    seen: list[tuple[int, int]] = []

    async def work(conn: asyncpg.Connection) -> int:
        value: int = await conn.fetchval("SELECT 41 + 1")
        return value

    def then(result: int) -> None:
        seen.append((result, pool.get_idle_size()))

    assert await run_statement(pool, work, then=then) == 42
    assert seen == [(42, 0)]  # the result, with the only connection still out
    # Back in the pool once run_statement returned: whatever the caller awaits next
    # (Redis, other nodes) does not hold it.
    assert pool.get_idle_size() == 1
    async with pool.acquire(timeout=0.5) as conn:
        assert await conn.fetchval("SELECT 1") == 1


async def test_a_failing_statement_never_reaches_then(one_connection_pool: asyncpg.Pool) -> None:
    called: list[object] = []

    async def work(conn: asyncpg.Connection) -> object:
        return await conn.fetchval("SELECT 1 / 0")

    with pytest.raises(asyncpg.DivisionByZeroError):
        await run_statement(one_connection_pool, work, then=called.append)
    assert called == []
    assert one_connection_pool.get_idle_size() == 1
