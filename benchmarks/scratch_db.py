"""A benchmark's scratch PostgreSQL database: named by a URL, created and migrated when
missing (as `make db` does), emptied between runs."""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit

import asyncpg
from asyncpg.exceptions import DuplicateDatabaseError

from dispatch.migrate import migrate

#: what a scratch database keeps when emptied: the migrations' reference data
KEEP_TABLES = frozenset({"schema_migrations", "specialty_prices", "spatial_ref_sys"})


async def truncate(conn: asyncpg.Connection) -> None:
    """Empty every table of the scratch database but the migrations' reference data."""
    tables = [
        r["tablename"]
        for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        if r["tablename"] not in KEEP_TABLES
    ]
    await conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


def database_name(dsn: str) -> str:
    name = urlsplit(dsn).path.lstrip("/")
    if not name:
        raise ValueError(f"{dsn}: name the database in the URL")
    return name


def with_database(dsn: str, name: str) -> str:
    """`dsn` naming database `name` instead (urlunsplit would drop the `//` of an empty
    host: `postgresql:///x` became `postgresql:/x`)."""
    parts = urlsplit(dsn)
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{parts.netloc}/{name}{query}"


def maintenance_dsn(dsn: str) -> str:
    """The same server's `postgres` database, from which a missing one is created."""
    return with_database(dsn, "postgres")


async def ensure_database(dsn: str) -> None:
    """Create the database of `dsn` if it is missing, then apply the migrations (as
    `make db` does): a scratch database may be named that does not exist yet, or that
    was never migrated."""
    name = database_name(dsn)
    conn = await asyncpg.connect(maintenance_dsn(dsn))
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            except DuplicateDatabaseError:  # another run made it meanwhile
                pass
    finally:
        await conn.close()
    await migrate(dsn)


def database_url(text: str) -> str:
    """argparse type: a PostgreSQL URL that names its database."""
    try:
        database_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text
