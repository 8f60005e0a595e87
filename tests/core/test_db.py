"""The pool's connections: ready for the queries the server runs before any request."""

from __future__ import annotations

from asyncpg.connection import LoggedQuery

from core.db import create_pool
from tests.conftest import TEST_DATABASE_URL


async def test_a_new_connection_already_knows_postgis_types() -> None:
    """Reading a location on a fresh pool connection sends that one statement: PostGIS's
    types were looked up while the pool opened, not in the first request that meets them."""
    pool = await create_pool(TEST_DATABASE_URL, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            sent: list[str] = []

            def log(query: LoggedQuery) -> None:
                sent.append(query.query)

            conn.add_query_logger(log)
            row = await conn.fetchrow(
                "SELECT ST_SetSRID(ST_MakePoint(2.35, 48.85), 4326)::geography AS g,"
                " ST_MakePoint(1, 2) AS m"
            )
            assert row is not None and row["g"] and row["m"]
            assert not any("typeinfo" in q for q in sent), sent
    finally:
        await pool.close()
