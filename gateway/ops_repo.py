"""SQL of the ops feed (gateway/ops.py): open jobs, recent jobs, new events and offers.

Functions take a connection; they only read."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from core.domain import OPEN_INTERVENTION_STATUSES

_JOB_COLUMNS = """i.id, i.status, i.specialty, i.artisan_id, i.created_at, i.updated_at,
    ST_Y(i.location::geometry) AS lat, ST_X(i.location::geometry) AS lon"""


async def open_jobs(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT {_JOB_COLUMNS} FROM interventions i WHERE i.status = ANY($1::text[])",
        list(OPEN_INTERVENTION_STATUSES),
    )
    return rows


async def recent_jobs(conn: asyncpg.Connection, *, since: datetime) -> list[asyncpg.Record]:
    """Jobs created since `since` (the demand side of the supply/demand cells)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT {_JOB_COLUMNS} FROM interventions i WHERE i.created_at > $1", since
    )
    return rows


async def last_event_id(conn: asyncpg.Connection) -> int:
    value: int | None = await conn.fetchval("SELECT max(id) FROM intervention_events")
    return value or 0


async def events_after(
    conn: asyncpg.Connection, *, after_id: int, limit: int
) -> list[asyncpg.Record]:
    """Status events with id > after_id, with their job's current row."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT e.id AS event_id, e.from_status, e.to_status, e.actor_role, e.at,
                   {_JOB_COLUMNS}
            FROM intervention_events e JOIN interventions i ON i.id = e.intervention_id
            WHERE e.id > $1 ORDER BY e.id LIMIT $2""",
        after_id,
        limit,
    )
    return rows


async def offers_of(
    conn: asyncpg.Connection, *, intervention_ids: list[uuid.UUID]
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT id, intervention_id, artisan_id, status, distance_km, created_at
           FROM offers WHERE intervention_id = ANY($1::uuid[])""",
        intervention_ids,
    )
    return rows


async def event_ids_after(conn: asyncpg.Connection, *, after_id: int) -> list[int]:
    rows = await conn.fetch("SELECT id FROM intervention_events WHERE id > $1", after_id)
    return [r["id"] for r in rows]
