"""SQL for offers. Callers own the transaction and lock the intervention row first
(intervention, then offers: one lock order everywhere, so no deadlocks)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from dispatch.interventions.repo import COLUMNS as JOB_COLUMNS
from dispatch.interventions.statemachine import ACTIVE

OFFER_COLUMNS = (
    "id, intervention_id, artisan_id, status, distance_km, score, created_at, expires_at"
)
_ACTIVE = sorted(ACTIVE)


async def get(conn: asyncpg.Connection, *, offer_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {OFFER_COLUMNS} FROM offers WHERE id = $1", offer_id)


async def expire_and_list(
    conn: asyncpg.Connection, *, intervention_id: uuid.UUID
) -> list[asyncpg.Record]:
    """Expire the job's due PENDING offers and list all its offers, in one round trip.

    Rows: id, artisan_id, status (after expiry), expires_at, just_expired. The caller
    holds the job's row lock, which every other writer of these offers takes first."""
    return await conn.fetch(
        """WITH expired AS (
             UPDATE offers SET status = 'EXPIRED', responded_at = clock_timestamp()
             WHERE intervention_id = $1 AND status = 'PENDING'
               AND expires_at <= clock_timestamp()
             RETURNING id)
           SELECT o.id, o.artisan_id, o.expires_at,
                  CASE WHEN e.id IS NULL THEN o.status ELSE 'EXPIRED' END AS status,
                  e.id IS NOT NULL AS just_expired
           FROM offers o LEFT JOIN expired e ON e.id = o.id
           WHERE o.intervention_id = $1""",
        intervention_id,
    )


async def for_intervention(
    conn: asyncpg.Connection, *, intervention_id: uuid.UUID
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT artisan_id, status, expires_at FROM offers WHERE intervention_id = $1",
        intervention_id,
    )


# What PostgreSQL says of a candidate the index proposed: 'free', 'unverified' (or
# unknown), 'busy' (holds a job) or 'engaged' (has a pending offer for another job).
# PostgreSQL, not the index mirror, is the authority.
_CANDIDATE_STATE = """CASE WHEN a.status IS DISTINCT FROM 'VERIFIED' THEN 'unverified'
                  WHEN EXISTS (SELECT 1 FROM interventions i WHERE i.artisan_id = c.artisan_id
                               AND i.status = ANY($ACTIVE::text[])) THEN 'busy'
                  WHEN EXISTS (SELECT 1 FROM offers o WHERE o.artisan_id = c.artisan_id
                               AND o.status = 'PENDING') THEN 'engaged'
                  ELSE 'free' END"""


async def offer_to_first_free(
    conn: asyncpg.Connection,
    *,
    intervention_id: uuid.UUID,
    artisan_ids: Sequence[uuid.UUID],
    distances_km: Sequence[float],
    scores: Sequence[float],
    wanted: int,
    timeout_s: float,
) -> list[asyncpg.Record]:
    """Check the ranked candidates and offer the job to the first `wanted` free ones, in
    one round trip (the dispatcher's hot path).

    One row per candidate, in rank order: artisan_id, state, and the offer's columns
    (id NULL unless an offer was inserted for them). An insert that hits a unique index
    (another dispatcher just offered that artisan a job) is skipped, not raised."""
    return await conn.fetch(
        f"""WITH cand AS (
              SELECT * FROM unnest($2::uuid[], $3::float8[], $4::float8[])
                WITH ORDINALITY AS t(artisan_id, distance_km, score, rank)),
            checked AS (
              SELECT c.*, {_CANDIDATE_STATE.replace("$ACTIVE", "$7")} AS state
              FROM cand c LEFT JOIN artisans a ON a.user_id = c.artisan_id),
            inserted AS (
              INSERT INTO offers
                (intervention_id, artisan_id, distance_km, score, created_at, expires_at)
              SELECT $1, artisan_id, distance_km, score, clock_timestamp(),
                     clock_timestamp() + make_interval(secs => $5)
              FROM (SELECT * FROM checked WHERE state = 'free' ORDER BY rank LIMIT $6) f
              ON CONFLICT DO NOTHING
              RETURNING {OFFER_COLUMNS})
            SELECT c.artisan_id, c.state, c.rank, i.id, i.intervention_id, i.status,
                   i.distance_km, i.score, i.created_at, i.expires_at
            FROM checked c LEFT JOIN inserted i ON i.artisan_id = c.artisan_id
            ORDER BY c.rank""",
        intervention_id,
        list(artisan_ids),
        list(distances_km),
        list(scores),
        timeout_s,
        wanted,
        _ACTIVE,
    )


async def lock_job_and_accept(
    conn: asyncpg.Connection, *, offer_id: uuid.UUID, artisan_id: uuid.UUID
) -> tuple[asyncpg.Record | None, bool]:
    """Lock the job of one of the artisan's offers, then accept that offer if it is still
    PENDING and unexpired (the hot path: one round trip).

    Returns (job, accepted); (None, False) when the artisan has no such offer. The job row
    is locked before the offer row is written (the lock order everywhere): the UPDATE
    cannot pass its `EXISTS (SELECT 1 FROM job)` test before the locking CTE has run. A
    job row that another transaction changed while we waited for its lock comes back as
    committed, and the offer row is re-checked the same way (READ COMMITTED)."""
    row = await conn.fetchrow(
        f"""WITH job AS (
              SELECT {JOB_COLUMNS} FROM interventions
              WHERE id = (SELECT intervention_id FROM offers WHERE id = $1 AND artisan_id = $2)
              FOR UPDATE),
            accepted AS (
              UPDATE offers SET status = 'ACCEPTED', responded_at = clock_timestamp()
              WHERE id = $1 AND artisan_id = $2 AND status = 'PENDING'
                AND expires_at > clock_timestamp() AND EXISTS (SELECT 1 FROM job)
              RETURNING id)
            SELECT job.*, EXISTS (SELECT 1 FROM accepted) AS offer_accepted FROM job""",
        offer_id,
        artisan_id,
    )
    if row is None:
        return None, False
    return row, bool(row["offer_accepted"])


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


async def make_busy_and_close_others(
    conn: asyncpg.Connection, *, artisan_id: uuid.UUID, intervention_id: uuid.UUID
) -> tuple[bool, list[asyncpg.Record]]:
    """The accepting artisan becomes BUSY, but only while still VERIFIED; if so, the
    job's other pending offers end TAKEN. One round trip; the caller holds the job lock.

    Returns (busy, taken offers as id, artisan_id). The artisan's UPDATE waits for a
    concurrent admin reject (which locks the artisan row) and re-reads the committed
    status, so a rejected artisan never gets a job; a reject that comes after sees BUSY
    and is refused (409) by the admin context."""
    rows = await conn.fetch(
        """WITH busy AS (
             UPDATE artisans SET current_status = 'BUSY'
             WHERE user_id = $1 AND status = 'VERIFIED' RETURNING user_id),
           taken AS (
             UPDATE offers SET status = 'TAKEN', responded_at = clock_timestamp()
             WHERE intervention_id = $2 AND status = 'PENDING' AND EXISTS (SELECT 1 FROM busy)
             RETURNING id, artisan_id)
           SELECT EXISTS (SELECT 1 FROM busy) AS busy, taken.id, taken.artisan_id
           FROM (SELECT 1) AS one LEFT JOIN taken ON TRUE""",
        artisan_id,
        intervention_id,
    )
    return bool(rows[0]["busy"]), [r for r in rows if r["id"] is not None]


async def revoke_pending_for_artisan(
    conn: asyncpg.Connection, *, artisan_id: uuid.UUID
) -> list[asyncpg.Record]:
    """REVOKED for every pending offer of one artisan (at most one, by the unique index).

    A single statement that locks only offer rows, so it cannot deadlock with a
    dispatcher step (which locks the job row first, then offers)."""
    return await conn.fetch(
        """UPDATE offers SET status = 'REVOKED', responded_at = clock_timestamp()
           WHERE artisan_id = $1 AND status = 'PENDING'
           RETURNING id, intervention_id""",
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
