"""SQL for interventions, their events and ratings. Callers own the transaction."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from dispatch.interventions.statemachine import ACTIVE, check_transition

COLUMNS = """id, client_id, artisan_id, specialty,
    ST_Y(location::geometry) AS lat, ST_X(location::geometry) AS lon,
    address, description, status, start_code, price_amount, price_currency,
    created_at, updated_at, search_round, search_started_at, first_offer_at"""
_ACTIVE = sorted(ACTIVE)


async def insert(
    conn: asyncpg.Connection,
    *,
    client_id: uuid.UUID,
    specialty: str,
    lat: float,
    lon: float,
    address: str | None,
    description: str | None,
    start_code: str,
    idempotency_key: str | None,
    price: tuple[int, str] | None,
    actor_role: str,
) -> asyncpg.Record | None:
    """Insert a SEARCHING job and its creation event (one round trip); None when the
    idempotency key exists.

    The creating transaction usually sends the first offer itself and moves
    next_check_at to its expiry; otherwise the job becomes due for the pollers a second
    later, as the fallback should the creating process die before its first step.
    """
    return await conn.fetchrow(
        f"""WITH job AS (
              INSERT INTO interventions
                (client_id, specialty, location, address, description, start_code,
                 idempotency_key, price_amount, price_currency, next_check_at)
              VALUES ($1, $2, ST_SetSRID(ST_MakePoint($4, $3), 4326)::geography, $5, $6, $7,
                      $8, $9, $10, clock_timestamp() + interval '1 second')
              ON CONFLICT (client_id, idempotency_key) WHERE idempotency_key IS NOT NULL
              DO NOTHING
              RETURNING *),
            event AS (
              INSERT INTO intervention_events
                (intervention_id, from_status, to_status, actor_id, actor_role, at)
              SELECT id, NULL, status, client_id, $11, clock_timestamp() FROM job)
            SELECT {COLUMNS} FROM job""",
        client_id,
        specialty,
        lat,
        lon,
        address,
        description,
        start_code,
        idempotency_key,
        price[0] if price else None,
        price[1] if price else None,
        actor_role,
    )


async def get_by_idempotency_key(
    conn: asyncpg.Connection, *, client_id: uuid.UUID, key: str
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {COLUMNS} FROM interventions WHERE client_id = $1 AND idempotency_key = $2",
        client_id,
        key,
    )


async def get(
    conn: asyncpg.Connection, *, intervention_id: uuid.UUID, for_update: bool = False
) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(
        f"SELECT {COLUMNS} FROM interventions WHERE id = $1{lock}", intervention_id
    )


async def list_for(
    conn: asyncpg.Connection,
    *,
    client_id: uuid.UUID | None = None,
    artisan_id: uuid.UUID | None = None,
    status: str | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Newest first; by client, by artisan, or (neither given) everyone's."""
    where, args = ["($1::text IS NULL OR status = $1)"], [status, limit]
    if client_id is not None:
        args.append(client_id)
        where.append(f"client_id = ${len(args)}")
    if artisan_id is not None:
        args.append(artisan_id)
        where.append(f"artisan_id = ${len(args)}")
    return await conn.fetch(
        f"""SELECT {COLUMNS} FROM interventions WHERE {" AND ".join(where)}
            ORDER BY created_at DESC, id LIMIT $2""",
        *args,
    )


async def transition_logged(
    conn: asyncpg.Connection,
    *,
    intervention_id: uuid.UUID,
    expected: str,
    target: str,
    actor_id: uuid.UUID | None,
    actor_role: str,
    data: dict[str, Any] | None = None,
    artisan_id: uuid.UUID | None = None,
    clear_artisan: bool = False,
) -> asyncpg.Record | None:
    """The one door every status change goes through: the state machine's check, then
    the conditional UPDATE and its intervention_events row in one round trip (no row,
    no event). Raises IllegalTransition (409) for a move the state machine forbids."""
    check_transition(expected, target, actor_role)
    return await conn.fetchrow(
        f"""WITH job AS (
              UPDATE interventions SET
                status = $3::varchar,
                artisan_id = CASE WHEN $5 THEN NULL ELSE COALESCE($4, artisan_id) END,
                next_check_at = CASE WHEN $3::varchar = 'SEARCHING' THEN clock_timestamp() END,
                search_round = CASE WHEN $5 THEN 0 ELSE search_round END,
                search_started_at = CASE WHEN $5 THEN clock_timestamp()
                                         ELSE search_started_at END,
                updated_at = clock_timestamp()
              WHERE id = $1 AND status = $2
              RETURNING *),
            event AS (
              INSERT INTO intervention_events
                (intervention_id, from_status, to_status, actor_id, actor_role, data, at)
              SELECT id, $2, $3, $6, $7, $8::jsonb, clock_timestamp() FROM job)
            SELECT {COLUMNS} FROM job""",
        intervention_id,
        expected,
        target,
        artisan_id,
        clear_artisan,
        actor_id,
        actor_role,
        data,
    )


async def events(conn: asyncpg.Connection, *, intervention_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT from_status, to_status, actor_id, actor_role, data, at
           FROM intervention_events WHERE intervention_id = $1 ORDER BY id""",
        intervention_id,
    )


async def set_artisan_current_status(
    conn: asyncpg.Connection, *, artisan_id: uuid.UUID, current_status: str
) -> None:
    await conn.execute(
        "UPDATE artisans SET current_status = $2 WHERE user_id = $1", artisan_id, current_status
    )


async def artisan_has_active_job(conn: asyncpg.Connection, *, artisan_id: uuid.UUID) -> bool:
    return bool(
        await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM interventions
                              WHERE artisan_id = $1 AND status = ANY($2::text[]))""",
            artisan_id,
            _ACTIVE,
        )
    )


async def insert_rating(
    conn: asyncpg.Connection,
    *,
    intervention_id: uuid.UUID,
    client_id: uuid.UUID,
    artisan_id: uuid.UUID,
    stars: int,
    comment: str | None,
) -> None:
    """Raises UniqueViolationError when this intervention is already rated."""
    await conn.execute(
        """INSERT INTO ratings (intervention_id, client_id, artisan_id, stars, comment)
           VALUES ($1, $2, $3, $4, $5)""",
        intervention_id,
        client_id,
        artisan_id,
        stars,
        comment,
    )


async def add_to_artisan_rating(
    conn: asyncpg.Connection, *, artisan_id: uuid.UUID, stars: int
) -> float:
    """The average of every rating received, kept with its count on the artisan row.

    Recomputed from the ratings table (just inserted in this transaction) rather than
    folded into the rounded stored value, so rounding never drifts; the seeded
    default rating counts for nothing once a real rating exists.
    """
    value = await conn.fetchval(
        """UPDATE artisans a SET
             rating = r.avg_stars,
             rating_count = r.n
           FROM (SELECT ROUND(AVG(stars)::numeric, 2) AS avg_stars, COUNT(*)::int AS n
                 FROM ratings WHERE artisan_id = $1) r
           WHERE a.user_id = $1
           RETURNING a.rating""",
        artisan_id,
    )
    return float(value)
