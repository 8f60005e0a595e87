"""SQL for offers. Callers own the transaction and lock the intervention row first
(intervention, then offers: one lock order everywhere, so no deadlocks)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from dispatch.interventions.statemachine import ACTIVE

OFFER_COLUMNS = (
    "id, intervention_id, artisan_id, status, distance_km, score, created_at, expires_at"
)
_ACTIVE = sorted(ACTIVE)


async def get(conn: asyncpg.Connection, *, offer_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {OFFER_COLUMNS} FROM offers WHERE id = $1", offer_id)


async def expire_due(
    conn: asyncpg.Connection, *, intervention_id: uuid.UUID
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """UPDATE offers SET status = 'EXPIRED', responded_at = clock_timestamp()
           WHERE intervention_id = $1 AND status = 'PENDING' AND expires_at <= clock_timestamp()
           RETURNING id, artisan_id""",
        intervention_id,
    )


async def for_intervention(
    conn: asyncpg.Connection, *, intervention_id: uuid.UUID
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT artisan_id, status, expires_at FROM offers WHERE intervention_id = $1",
        intervention_id,
    )


async def candidate_states(
    conn: asyncpg.Connection, *, artisan_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """What PostgreSQL says of each candidate the index proposed.

    'free', 'unverified' (or unknown), 'busy' (holds a job) or 'engaged' (has a pending
    offer for another job). PostgreSQL, not the index mirror, is the authority.
    """
    rows = await conn.fetch(
        """SELECT a.user_id,
             CASE WHEN a.status <> 'VERIFIED' THEN 'unverified'
                  WHEN EXISTS (SELECT 1 FROM interventions i WHERE i.artisan_id = a.user_id
                               AND i.status = ANY($2::text[])) THEN 'busy'
                  WHEN EXISTS (SELECT 1 FROM offers o WHERE o.artisan_id = a.user_id
                               AND o.status = 'PENDING') THEN 'engaged'
                  ELSE 'free' END AS state
           FROM artisans a WHERE a.user_id = ANY($1::uuid[])""",
        list(artisan_ids),
        _ACTIVE,
    )
    states = {r["user_id"]: r["state"] for r in rows}
    return {a: states.get(a, "unverified") for a in artisan_ids}


async def insert_many(
    conn: asyncpg.Connection,
    *,
    intervention_id: uuid.UUID,
    artisan_ids: Sequence[uuid.UUID],
    distances_km: Sequence[float],
    scores: Sequence[float],
    timeout_s: float,
) -> list[asyncpg.Record]:
    """Insert PENDING offers; rows that hit a unique index (already asked for this job,
    or the artisan got another pending offer meanwhile) are skipped, not raised."""
    return await conn.fetch(
        f"""INSERT INTO offers
              (intervention_id, artisan_id, distance_km, score, created_at, expires_at)
            SELECT $1, a, d, s, clock_timestamp(),
                   clock_timestamp() + make_interval(secs => $5)
            FROM unnest($2::uuid[], $3::float8[], $4::float8[]) AS t(a, d, s)
            ON CONFLICT DO NOTHING
            RETURNING {OFFER_COLUMNS}""",
        intervention_id,
        list(artisan_ids),
        list(distances_km),
        list(scores),
        timeout_s,
    )


async def accept(
    conn: asyncpg.Connection, *, offer_id: uuid.UUID, artisan_id: uuid.UUID
) -> asyncpg.Record | None:
    """PENDING and not yet expired -> ACCEPTED; None otherwise."""
    return await conn.fetchrow(
        f"""UPDATE offers SET status = 'ACCEPTED', responded_at = clock_timestamp()
            WHERE id = $1 AND artisan_id = $2 AND status = 'PENDING'
              AND expires_at > clock_timestamp()
            RETURNING {OFFER_COLUMNS}""",
        offer_id,
        artisan_id,
    )


async def decline(
    conn: asyncpg.Connection, *, offer_id: uuid.UUID, artisan_id: uuid.UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""UPDATE offers SET status = 'DECLINED', responded_at = clock_timestamp()
            WHERE id = $1 AND artisan_id = $2 AND status = 'PENDING'
            RETURNING {OFFER_COLUMNS}""",
        offer_id,
        artisan_id,
    )


async def close_pending_for_intervention(
    conn: asyncpg.Connection, *, intervention_id: uuid.UUID, outcome: str
) -> list[asyncpg.Record]:
    """Close every still-pending offer of a job (TAKEN after an accept, REVOKED on cancel)."""
    return await conn.fetch(
        """UPDATE offers SET status = $2, responded_at = clock_timestamp()
           WHERE intervention_id = $1 AND status = 'PENDING'
           RETURNING id, artisan_id""",
        intervention_id,
        outcome,
    )


async def withdraw_accepted(
    conn: asyncpg.Connection, *, intervention_id: uuid.UUID, artisan_id: uuid.UUID
) -> None:
    """The artisan gave the job back: their offer stops counting as the accepted one,
    and its row keeps them excluded from this job (UNIQUE(intervention_id, artisan_id))."""
    await conn.execute(
        """UPDATE offers SET status = 'DECLINED', responded_at = clock_timestamp()
           WHERE intervention_id = $1 AND artisan_id = $2 AND status = 'ACCEPTED'""",
        intervention_id,
        artisan_id,
    )
