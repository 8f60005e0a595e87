from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from dispatch.migrate import SQL_DIR, MigrationError, discover, migrate
from tests.factories import create_user, insert_intervention


@pytest.fixture
async def scratch_db() -> AsyncIterator[str]:
    name = f"zendo_mig_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect("postgresql:///postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql:///{name}"
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


def _write(d: Path, name: str, sql: str) -> None:
    (d / name).write_text(sql)


async def test_applies_each_file_once_and_records_checksums(
    scratch_db: str, tmp_path: Path
) -> None:
    _write(tmp_path, "001_a.sql", "CREATE TABLE a (x int);")
    _write(tmp_path, "002_b.sql", "CREATE TABLE b (x int);")
    assert await migrate(scratch_db, tmp_path) == ["001_a.sql", "002_b.sql"]
    assert await migrate(scratch_db, tmp_path) == []
    conn = await asyncpg.connect(scratch_db)
    try:
        rows = await conn.fetch("SELECT filename, checksum FROM schema_migrations ORDER BY 1")
    finally:
        await conn.close()
    assert [r["filename"] for r in rows] == ["001_a.sql", "002_b.sql"]
    assert all(len(r["checksum"]) == 64 for r in rows)


async def test_refuses_a_changed_applied_file(scratch_db: str, tmp_path: Path) -> None:
    _write(tmp_path, "001_a.sql", "CREATE TABLE a (x int);")
    await migrate(scratch_db, tmp_path)
    _write(tmp_path, "001_a.sql", "CREATE TABLE a (x bigint);")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrate(scratch_db, tmp_path)


async def test_a_failing_file_is_rolled_back_whole(scratch_db: str, tmp_path: Path) -> None:
    _write(tmp_path, "001_a.sql", "CREATE TABLE a (x int);")
    _write(tmp_path, "002_bad.sql", "CREATE TABLE half (x int); SELECT no_such_function();")
    with pytest.raises(asyncpg.UndefinedFunctionError):
        await migrate(scratch_db, tmp_path)
    conn = await asyncpg.connect(scratch_db)
    try:
        assert await conn.fetchval("SELECT to_regclass('half')") is None
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 1
    finally:
        await conn.close()


def test_discover_rejects_bad_names(tmp_path: Path) -> None:
    _write(tmp_path, "1_x.sql", "")
    with pytest.raises(MigrationError):
        discover(tmp_path)


def test_bundled_migrations_are_well_formed() -> None:
    names = [m.name for m in discover(SQL_DIR)]
    assert names[0] == "001_core_schema.sql"
    assert names == sorted(names)


async def test_schema_constraints_hold(db: asyncpg.Connection) -> None:
    artisan = await create_user(db, role="ARTISAN", artisan_status="PENDING")
    # An unverified artisan cannot go ONLINE.
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute("UPDATE artisans SET current_status='ONLINE' WHERE user_id=$1", artisan)
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute("UPDATE artisans SET level='GURU' WHERE user_id=$1", artisan)
    client = await create_user(db, role="CLIENT")
    verified = await create_user(db, role="ARTISAN")
    insert_job = """INSERT INTO interventions (client_id, artisan_id, specialty, location, status, start_code)
                    VALUES ($1, $2, 'PLUMBER', ST_MakePoint(2.35, 48.85)::geography, $3, '1234') RETURNING id"""
    await db.fetchval(insert_job, client, verified, "ASSIGNED")
    # One active intervention per artisan.
    with pytest.raises(asyncpg.UniqueViolationError):
        await db.fetchval(insert_job, client, verified, "EN_ROUTE")
    # An assigned job names its artisan; a searching one does not.
    with pytest.raises(asyncpg.CheckViolationError):
        await db.fetchval(insert_job, client, None, "ASSIGNED")
    with pytest.raises(asyncpg.CheckViolationError):
        await db.fetchval(insert_job, client, verified, "SEARCHING")
    job = await db.fetchval(insert_job, client, None, "SEARCHING")
    a2 = await create_user(db, role="ARTISAN")
    offer = """INSERT INTO offers (intervention_id, artisan_id, status, distance_km, score, expires_at)
               VALUES ($1, $2, $3, 1.0, 1.0, now() + interval '20 seconds')"""
    await db.execute(offer, job, verified, "ACCEPTED")
    # At most one accepted offer per intervention; never two offers to one artisan for a job.
    with pytest.raises(asyncpg.UniqueViolationError):
        await db.execute(offer, job, a2, "ACCEPTED")
    with pytest.raises(asyncpg.UniqueViolationError):
        await db.execute(offer, job, verified, "PENDING")


# The hot tables' single-column rules live in domains (sql/015_check_domains.sql): a table
# CHECK is rebuilt for every statement that writes the table, a domain's once per connection.
_HOT_TABLES = ("users", "artisans", "interventions", "offers", "intervention_events")


async def test_hot_tables_keep_only_multi_column_checks(db: asyncpg.Connection) -> None:
    rows = await db.fetch(
        """SELECT conname, cardinality(conkey) AS cols
             FROM pg_constraint WHERE contype = 'c' AND conrelid::regclass::text = ANY($1)""",
        list(_HOT_TABLES),
    )
    assert {r["conname"] for r in rows} == {
        "artisans_online_needs_verified",
        "interventions_assigned_has_artisan",
        "interventions_searching_has_no_artisan",
        "interventions_price_pair",
        "offers_check",
    }
    assert all(r["cols"] >= 2 for r in rows)


@pytest.mark.parametrize(
    ("sql", "value"),
    [
        ("UPDATE users SET email = $2 WHERE id = $1", "Upper@example.com"),
        ("UPDATE users SET email = $2 WHERE id = $1", "@example.com"),
        ("UPDATE users SET role = $2 WHERE id = $1", "ROOT"),
        ("UPDATE users SET open_jobs = $2::text::int WHERE id = $1", "-1"),
        ("UPDATE artisans SET status = $2 WHERE user_id = $1", "MAYBE"),
        ("UPDATE artisans SET current_status = $2 WHERE user_id = $1", "AWAY"),
        ("UPDATE artisans SET level = $2 WHERE user_id = $1", "GURU"),
        ("UPDATE artisans SET specialty = $2 WHERE user_id = $1", "plumber"),
        ("UPDATE artisans SET rating = $2::text::numeric WHERE user_id = $1", "5.01"),
        ("UPDATE artisans SET rating = $2::text::numeric WHERE user_id = $1", "-0.01"),
        ("UPDATE artisans SET rating_count = $2::text::int WHERE user_id = $1", "-1"),
        ("UPDATE interventions SET status = $2 WHERE artisan_id = $1", "DONE"),
        ("UPDATE interventions SET specialty = $2 WHERE artisan_id = $1", "ROOFER"),
        ("UPDATE interventions SET start_code = $2 WHERE artisan_id = $1", "12a4"),
        (
            "UPDATE interventions SET start_code_failures = $2::text::int WHERE artisan_id = $1",
            "-1",
        ),
        ("UPDATE interventions SET search_round = $2::text::int WHERE artisan_id = $1", "11"),
        (
            "UPDATE interventions SET price_amount = $2::text::int, price_currency = 'EUR'"
            " WHERE artisan_id = $1",
            "0",
        ),
        (
            "UPDATE interventions SET price_amount = 100, price_currency = $2"
            " WHERE artisan_id = $1",
            "eur",
        ),
        ("UPDATE offers SET status = $2 WHERE artisan_id = $1", "MAYBE"),
        ("UPDATE offers SET distance_km = $2::text::float8 WHERE artisan_id = $1", "-0.5"),
        ("UPDATE intervention_events SET actor_role = $2 WHERE actor_id = $1", "ROBOT"),
    ],
)
async def test_each_single_column_rule_still_refuses(
    db: asyncpg.Connection, sql: str, value: str
) -> None:
    client = await create_user(db, role="CLIENT")
    artisan = await create_user(db, role="ARTISAN")
    job = await insert_intervention(db, client_id=client, artisan_id=artisan)
    await db.execute(
        """INSERT INTO offers (intervention_id, artisan_id, status, distance_km, score, expires_at)
           VALUES ($1, $2, 'ACCEPTED', 1.0, 1.0, now() + interval '20 seconds')""",
        job,
        artisan,
    )
    await db.execute(
        """INSERT INTO intervention_events (intervention_id, from_status, to_status, actor_id,
                                            actor_role)
           VALUES ($1, 'SEARCHING', 'ASSIGNED', $2, 'ARTISAN')""",
        job,
        artisan,
    )
    target = client if sql.startswith("UPDATE users") else artisan
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute(sql, target, value)
