"""PostgreSQL access: the pool's lifetime and transaction helpers.

Repos take a connection; the caller owns the transaction (see `transaction`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import asyncpg
import orjson

T = TypeVar("T")
RETRYABLE = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)
# PostgreSQL restarting, unreachable or out of connections: nothing the request did was
# wrong and nothing half-done was committed, so it is answered 503 (retry later). Class
# 08 (connection), 57 (shutdown, starting up), 53300 (too many connections), a socket
# that broke or was refused (asyncpg raises a plain OSError when a connect fails), and a
# statement that outlived `command_timeout`.
UNAVAILABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.TooManyConnectionsError,
    asyncpg.ConnectionDoesNotExistError,
    OSError,
    TimeoutError,
)


# PostGIS's types: asyncpg looks up a type it does not know (one catalog query, a few
# milliseconds of CPU on both sides) the first time each connection meets it.
_EXTENSION_TYPES = ("geography", "geometry")


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(
            typ,
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )
    # Learn PostGIS's types now, while the pool opens, rather than in the first request
    # that reads a location on this connection (absent before the first migration).
    present = await conn.fetch(
        "SELECT typname FROM pg_type WHERE typname = ANY($1::text[])", list(_EXTENSION_TYPES)
    )
    if present:
        casts = ", ".join(f"NULL::{row['typname']}" for row in present)
        await conn.fetchrow(f"SELECT {casts}")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool release hook: nothing to undo, so no round trip.

    asyncpg's default reset sends `SELECT pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL` on every release: one more round trip on every request,
    paid before the caller's next step (the push after a commit). Pool connections
    never take advisory locks, LISTEN, keep cursors or SET session variables (only
    `SET LOCAL`), and asyncpg still rolls back a transaction left open.
    """


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 20) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        # Idle connections stay open: the pool's size is the operator's choice, and a
        # reconnection costs more than a sleeping backend (see Settings.pg_pool_min_size).
        max_inactive_connection_lifetime=0,
        command_timeout=30,
        server_settings={"application_name": "zendo", "timezone": "UTC"},
    )
    assert pool is not None
    return pool


@asynccontextmanager
async def transaction(
    pool: asyncpg.Pool, *, isolation: str = "read_committed"
) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as conn, conn.transaction(isolation=isolation):
        yield conn


async def run_in_transaction(
    pool: asyncpg.Pool,
    work: Callable[[asyncpg.Connection], Awaitable[T]],
    *,
    isolation: str = "read_committed",
    attempts: int = 5,
) -> T:
    """Run `work` in a transaction, retrying serialization failures and deadlocks."""
    for attempt in range(1, attempts + 1):
        try:
            async with transaction(pool, isolation=isolation) as conn:
                return await work(conn)
        except RETRYABLE:
            if attempt == attempts:
                raise
            await asyncio.sleep(random.uniform(0, 0.01 * 2**attempt))
    raise AssertionError("unreachable")
