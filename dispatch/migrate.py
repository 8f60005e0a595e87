"""`zendo migrate`: numbered plain-SQL files, each applied once in its own transaction."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
_NAME_RE = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
# Serialises concurrent `zendo migrate` runs (several containers starting at once).
_LOCK_ID = 0x5A454E444F


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Migration:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(sql_dir: Path = SQL_DIR) -> list[Migration]:
    found = []
    for path in sorted(sql_dir.glob("*.sql")):
        if not _NAME_RE.match(path.name):
            raise MigrationError(f"{path.name}: migration names look like 001_name.sql")
        found.append(Migration(path.name, path.read_text()))
    numbers = [m.name[:3] for m in found]
    if len(numbers) != len(set(numbers)):
        raise MigrationError("two migrations share a number")
    return found


async def migrate(dsn: str, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply pending migrations; return the names applied. Refuses edited applied files."""
    migrations = discover(sql_dir)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   filename TEXT PRIMARY KEY,
                   checksum TEXT NOT NULL,
                   applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"""
        )
        applied = {
            r["filename"]: r["checksum"]
            for r in await conn.fetch("SELECT filename, checksum FROM schema_migrations")
        }
        for m in migrations:
            if m.name in applied and applied[m.name] != m.checksum:
                raise MigrationError(
                    f"{m.name} was changed after it was applied; add a new migration instead"
                )
        done = []
        for m in migrations:
            if m.name in applied:
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (filename, checksum) VALUES ($1, $2)",
                    m.name,
                    m.checksum,
                )
            done.append(m.name)
        return done
    finally:
        try:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
        finally:
            await conn.close()
