"""SQL for offers. Callers own the transaction and lock the intervention row first
(intervention, then offers: one lock order everywhere, so no deadlocks)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from dispatch.interventions.repo import COLUMNS as JOB_COLUMNS
from dispatch.interventions.repo import transition_ctes
from dispatch.interventions.statemachine import ACTIVE, ASSIGNED, SEARCHING

OFFER_COLUMNS = (
    "id, intervention_id, artisan_id, status, distance_km, score, created_at, expires_at"
)
# Written out, not a parameter: the planner then proves the partial unique index on an
# artisan's active job (sql/001) applies, and a probe reads at most one entry.
_ACTIVE_SQL = "(" + ", ".join(f"'{status}'" for status in sorted(ACTIVE)) + ")"


async def get(conn: asyncpg.Connection, *, offer_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {OFFER_COLUMNS} FROM offers WHERE id = $1", offer_id)


async def expire_and_list(
    conn: asyncpg.Connection, *, intervention_id: uuid.UUID
) -> tuple[float, list[asyncpg.Record]]:
    """Expire the job's due PENDING offers and list all its offers, in one round trip.

    Returns the database's clock (epoch seconds) and the rows: id, artisan_id, status
    (after expiry), created_at, expires_at, responded_at, score, just_expired. The caller holds the job's
    row lock, which every other writer of these offers takes first."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """WITH expired AS (
             UPDATE offers SET status = 'EXPIRED', responded_at = clock_timestamp()
             WHERE intervention_id = $1 AND status = 'PENDING'
               AND expires_at <= clock_timestamp()
             RETURNING id)
           SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8 AS now,
                  o.id, o.artisan_id, o.created_at, o.expires_at, o.responded_at, o.score,
                  CASE WHEN e.id IS NULL THEN o.status ELSE 'EXPIRED' END AS status,
                  e.id IS NOT NULL AS just_expired
           FROM (SELECT 1) AS one
             LEFT JOIN offers o ON o.intervention_id = $1
             LEFT JOIN expired e ON e.id = o.id""",
        intervention_id,
    )
    return rows[0]["now"], [r for r in rows if r["id"] is not None]


# For the `fair` policy (`artisan_history`): read through offers_artisan_answered_idx
# (sql/016), bounded by artisan and by the window's start (a stable bound: the index can
# use it; clock_timestamp() is volatile and could only filter).
ARTISAN_HISTORY = """SELECT a.id AS artisan_id,
                  (SELECT EXTRACT(EPOCH FROM max(i.updated_at))::float8 FROM interventions i
                   WHERE i.artisan_id = a.id AND i.status IN ('COMPLETED', 'CANCELLED'))
                    AS last_job_ended_at,
                  count(o.id) AS offers,
                  count(o.id) FILTER (WHERE o.status = 'ACCEPTED') AS accepted
           FROM unnest($1::uuid[]) AS a(id)
             LEFT JOIN offers o ON o.artisan_id = a.id
               AND o.status IN ('ACCEPTED', 'DECLINED', 'EXPIRED')
               AND o.created_at > statement_timestamp() - make_interval(secs => $2)
           GROUP BY a.id"""


async def artisan_history(
    conn: asyncpg.Connection, *, artisan_ids: Sequence[uuid.UUID], window_s: float
) -> list[asyncpg.Record]:
    """For the `fair` policy: each artisan's last finished job (epoch seconds, NULL if
    none), and their offers answered or expired within the window, with how many of
    them they accepted (a withdrawn accept is DECLINED, so it counts against them)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        ARTISAN_HISTORY,
        list(artisan_ids),
        window_s,
    )
    return rows


# What PostgreSQL says of a candidate the index proposed: 'free', 'unverified' (or
# unknown), 'busy' (holds a job) or 'engaged' (has a pending or held offer for another
# job).
# PostgreSQL, not the index mirror, is the authority.
# Each EXISTS probes one artisan's rows by index. `OFFSET 0` keeps PostgreSQL from turning
# it into a hashed subplan, which reads every active job and every open offer once per
# statement: a prepared statement planned while the tables are small (a fresh database,
# never analyzed without autovacuum) keeps that plan as they grow, and each job created
# would read the whole interventions table.
_CANDIDATE_STATE = f"""CASE WHEN a.status IS DISTINCT FROM 'VERIFIED' THEN 'unverified'
                  WHEN EXISTS (SELECT 1 FROM interventions i WHERE i.artisan_id = c.artisan_id
                               AND i.status IN {_ACTIVE_SQL} OFFSET 0) THEN 'busy'
                  WHEN EXISTS (SELECT 1 FROM offers o WHERE o.artisan_id = c.artisan_id
                               AND o.status IN ('PENDING', 'HELD') OFFSET 0) THEN 'engaged'
                  ELSE 'free' END"""


def _checked_candidates(*, ids: str, distances: str, scores: str) -> str:
    """CTEs `cand` (the index's ranking, in order) and `checked` (+ PostgreSQL's state)."""
    return f"""cand AS (
              SELECT * FROM unnest({ids}::uuid[], {distances}::float8[], {scores}::float8[])
                WITH ORDINALITY AS t(artisan_id, distance_km, score, rank)),
            checked AS (
              SELECT c.*, {_CANDIDATE_STATE} AS state
              FROM cand c LEFT JOIN artisans a ON a.user_id = c.artisan_id)"""


async def create_job_with_offers(
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
    actor_role: str,
    artisan_ids: Sequence[uuid.UUID],
    distances_km: Sequence[float],
    scores: Sequence[float],
    wanted: int,
    timeout_s: float,
    max_open_jobs: int,
    max_requests: int,
    request_window_s: float,
) -> list[asyncpg.Record]:
    """Create a SEARCHING job, its creation event and its first offers in ONE statement:
    no BEGIN, no COMMIT, one round trip (the product's hottest path).

    The price is the server's (`specialty_prices`): with no price for the specialty
    nothing is written. The ranked candidates (from the index) are checked as in
    `offer_to_first_free` and the first `wanted` free ones get an offer. next_check_at is
    the offers' expiry when some candidate was free, else a second from now (the
    fallback should the creating process die before its first step).

    Rows: one per inserted offer (offer_* columns), or a single row without one; each
    row carries the job's columns (NULL when the idempotency key exists: nothing was
    written), `priced`, `free` (how many checked candidates were free, at most
    `wanted`), `client_exists` and `has_slot`: false when the client already has
    `max_open_jobs` open jobs (nothing is written). The slot is taken on the client's row, locked: a
    concurrent create of the same client waits, then rechecks the count the trigger of
    sql/010 keeps. The same row keeps the client's requests of the last `request_window_s`
    (sql/014): past `max_requests` of them `rate_ok` is false, `rate_retry_s` says when
    one leaves the window and nothing is written; otherwise this request is recorded,
    whatever else the statement decides. An offer insert that hits a unique index is
    skipped, not raised."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""WITH {_checked_candidates(ids="$10", distances="$11", scores="$12")},
            free AS (SELECT * FROM checked WHERE state = 'free' ORDER BY rank LIMIT $13),
            price AS (SELECT amount, currency FROM specialty_prices WHERE specialty = $2),
            client AS (
              SELECT u.open_jobs < $15 AS free, w.recent, cardinality(w.recent) < $16 AS rate_ok
              FROM users u,
                LATERAL (SELECT ARRAY(
                  SELECT t FROM unnest(u.recent_job_requests) t
                  WHERE t > statement_timestamp() - make_interval(secs => $17)
                  ORDER BY t) AS recent) w
              WHERE u.id = $1
              FOR NO KEY UPDATE OF u),
            counted AS (
              UPDATE users SET recent_job_requests = client.recent || statement_timestamp()
              FROM client WHERE users.id = $1 AND client.rate_ok
              RETURNING 1),
            job AS (
              INSERT INTO interventions
                (client_id, specialty, location, address, description, start_code,
                 idempotency_key, price_amount, price_currency, next_check_at, first_offer_at)
              SELECT $1, $2, ST_SetSRID(ST_MakePoint($4, $3), 4326)::geography, $5, $6, $7,
                     $8, price.amount, price.currency,
                     CASE WHEN EXISTS (SELECT 1 FROM free)
                          THEN clock_timestamp() + make_interval(secs => $14)
                          ELSE clock_timestamp() + interval '1 second' END,
                     CASE WHEN EXISTS (SELECT 1 FROM free) THEN clock_timestamp() END
              FROM price, client WHERE client.free AND client.rate_ok
              ON CONFLICT (client_id, idempotency_key) WHERE idempotency_key IS NOT NULL
              DO NOTHING
              RETURNING *),
            job_event AS (
              INSERT INTO intervention_events
                (intervention_id, from_status, to_status, actor_id, actor_role, at)
              SELECT id, NULL, status, client_id, $9, clock_timestamp() FROM job),
            offered AS (
              INSERT INTO offers
                (intervention_id, artisan_id, distance_km, score, created_at, expires_at)
              SELECT job.id, f.artisan_id, f.distance_km, f.score, clock_timestamp(),
                     clock_timestamp() + make_interval(secs => $14)
              FROM job CROSS JOIN (SELECT * FROM free ORDER BY rank) f
              ON CONFLICT DO NOTHING
              RETURNING {OFFER_COLUMNS}),
            created AS (SELECT {JOB_COLUMNS} FROM job)
            SELECT created.*, o.id AS offer_id, o.artisan_id AS offer_artisan_id,
                   o.distance_km AS offer_distance_km, o.score AS offer_score,
                   o.expires_at AS offer_expires_at,
                   EXISTS (SELECT 1 FROM price) AS priced,
                   EXISTS (SELECT 1 FROM client) AS client_exists,
                   EXISTS (SELECT 1 FROM client WHERE free) AS has_slot,
                   (SELECT rate_ok FROM client) AS rate_ok,
                   (SELECT extract(epoch FROM recent[cardinality(recent) - $16 + 1]
                           + make_interval(secs => $17) - statement_timestamp())
                    FROM client WHERE NOT rate_ok)::float8 AS rate_retry_s,
                   (SELECT count(*) FROM free) AS free
            FROM (SELECT 1) AS one
              LEFT JOIN created ON TRUE
              LEFT JOIN offered o ON TRUE""",
        client_id,
        specialty,
        lat,
        lon,
        address,
        description,
        start_code,
        idempotency_key,
        actor_role,
        list(artisan_ids),
        list(distances_km),
        list(scores),
        wanted,
        timeout_s,
        max_open_jobs,
        max_requests,
        request_window_s,
    )
    return rows


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
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""WITH {_checked_candidates(ids="$2", distances="$3", scores="$4")},
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
    )
    return rows


async def accept(
    conn: asyncpg.Connection, *, offer_id: uuid.UUID, artisan_id: uuid.UUID
) -> asyncpg.Record | None:
    """Accept one of the artisan's offers in ONE statement (no BEGIN/COMMIT round trips):
    lock the job row, then the artisan's row (still VERIFIED?), accept the offer if it
    is PENDING and unexpired (or HELD: best_accept's award) and the job SEARCHING, make
    the artisan BUSY, close the job's other pending or held offers (TAKEN) and move the job SEARCHING -> ASSIGNED through
    the status door. Either all of it happens or none of it.

    Returns None when the artisan has no such offer; else one row: the job's columns
    (ASSIGNED when accepted, else as locked), `offer_accepted`, `verified`, and the
    TAKEN offers as `taken_ids` / `taken_artisans`, and the artisan's new `live_version`
    (migration 011). Locks are taken job, artisan,
    offers: each step's one-time `EXISTS` on the previous CTE orders them, and a row
    changed while we waited for its lock is re-read as committed (READ COMMITTED). A
    race that slips past the locks hits a partial unique index (UniqueViolation)."""
    move = transition_ctes(
        job_id="(SELECT id FROM job)",
        expected=SEARCHING,
        target=ASSIGNED,
        actor_role="ARTISAN",
        actor_id="$2::uuid",
        data="jsonb_build_object('offer_id', $1::text)",
        artisan_id="$2::uuid",
        guard="EXISTS (SELECT 1 FROM busy)",
    )
    return await conn.fetchrow(
        f"""WITH job AS (
              SELECT * FROM interventions
              WHERE id = (SELECT intervention_id FROM offers WHERE id = $1 AND artisan_id = $2)
              FOR UPDATE),
            art AS (
              SELECT user_id FROM artisans
              WHERE user_id = $2 AND status = 'VERIFIED' AND EXISTS (SELECT 1 FROM job)
              FOR NO KEY UPDATE),
            accepted AS (
              UPDATE offers SET status = 'ACCEPTED', responded_at = clock_timestamp()
              WHERE id = $1 AND artisan_id = $2
                AND (status = 'HELD' OR (status = 'PENDING' AND expires_at > clock_timestamp()))
                AND EXISTS (SELECT 1 FROM job WHERE status = 'SEARCHING')
                AND EXISTS (SELECT 1 FROM art)
              RETURNING id),
            busy AS (
              UPDATE artisans SET current_status = 'BUSY',
                                  live_version = nextval('artisan_live_version')
              WHERE user_id = $2 AND status = 'VERIFIED' AND EXISTS (SELECT 1 FROM accepted)
              RETURNING user_id, live_version),
            taken AS (
              UPDATE offers SET status = 'TAKEN', responded_at = clock_timestamp()
              WHERE intervention_id = (SELECT id FROM job) AND status IN ('PENDING', 'HELD')
                AND id <> $1
                AND EXISTS (SELECT 1 FROM busy)
              RETURNING id, artisan_id),
            {move},
            latest AS (
              SELECT * FROM moved
              UNION ALL SELECT * FROM job WHERE NOT EXISTS (SELECT 1 FROM moved))
            SELECT {JOB_COLUMNS},
                   EXISTS (SELECT 1 FROM accepted) AS offer_accepted,
                   EXISTS (SELECT 1 FROM art) AS verified,
                   ARRAY(SELECT id FROM taken) AS taken_ids,
                   ARRAY(SELECT artisan_id FROM taken) AS taken_artisans,
                   (SELECT live_version FROM busy) AS live_version
            FROM latest""",
        offer_id,
        artisan_id,
    )


async def hold(
    conn: asyncpg.Connection, *, offer_id: uuid.UUID, artisan_id: uuid.UUID, window_s: float
) -> asyncpg.Record | None:
    """best_accept: keep an in-time accept as HELD (the job stays SEARCHING) and bring
    the job's next step forward to the award: `window_s` after its first held accept.

    Returns None when the artisan has no such offer; else the job's columns, `held`
    (this call or an earlier one holds the offer) and `award_in_s`."""
    return await conn.fetchrow(
        f"""WITH job AS (
              SELECT * FROM interventions
              WHERE id = (SELECT intervention_id FROM offers WHERE id = $1 AND artisan_id = $2)
              FOR UPDATE),
            first_held AS (
              SELECT min(responded_at) AS at FROM offers
              WHERE intervention_id = (SELECT id FROM job) AND status = 'HELD'),
            held AS (
              UPDATE offers SET status = 'HELD', responded_at = clock_timestamp()
              WHERE id = $1 AND artisan_id = $2 AND status = 'PENDING'
                AND expires_at > clock_timestamp()
                AND EXISTS (SELECT 1 FROM job WHERE status = 'SEARCHING')
              RETURNING id),
            due AS (
              UPDATE interventions SET next_check_at = LEAST(
                  next_check_at,
                  COALESCE((SELECT at FROM first_held), clock_timestamp())
                    + make_interval(secs => $3))
              WHERE id = (SELECT id FROM job) AND EXISTS (SELECT 1 FROM held)
              RETURNING next_check_at)
            SELECT {JOB_COLUMNS},
                   EXISTS (SELECT 1 FROM held)
                     OR EXISTS (SELECT 1 FROM offers WHERE id = $1 AND status = 'HELD') AS held,
                   (SELECT EXTRACT(EPOCH FROM next_check_at - clock_timestamp())::float8
                    FROM due) AS award_in_s
            FROM job""",
        offer_id,
        artisan_id,
        window_s,
    )


async def offer_state(conn: asyncpg.Connection, *, offer_id: uuid.UUID) -> asyncpg.Record | None:
    """Why an accept did not take: the offer's status, and whether it is still open."""
    return await conn.fetchrow(
        """SELECT status, status = 'PENDING' AND expires_at > clock_timestamp() AS open
           FROM offers WHERE id = $1""",
        offer_id,
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


async def revoke_pending_for_artisan(
    conn: asyncpg.Connection, *, artisan_id: uuid.UUID
) -> list[asyncpg.Record]:
    """REVOKED for every pending offer of one artisan (at most one, by the unique index).

    A single statement that locks only offer rows, so it cannot deadlock with a
    dispatcher step (which locks the job row first, then offers)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """UPDATE offers SET status = 'REVOKED', responded_at = clock_timestamp()
           WHERE artisan_id = $1 AND status IN ('PENDING', 'HELD')
           RETURNING id, intervention_id""",
        artisan_id,
    )
    return rows


async def close_pending_for_intervention(
    conn: asyncpg.Connection, *, intervention_id: uuid.UUID, outcome: str
) -> list[asyncpg.Record]:
    """Close every still-pending (or held) offer of a job (TAKEN after an accept, REVOKED on cancel)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """UPDATE offers SET status = $2, responded_at = clock_timestamp()
           WHERE intervention_id = $1 AND status IN ('PENDING', 'HELD')
           RETURNING id, artisan_id""",
        intervention_id,
        outcome,
    )
    return rows


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


async def jobs_waiting_for_offer(conn: asyncpg.Connection, *, limit: int) -> list[asyncpg.Record]:
    """SEARCHING jobs with no pending offer, oldest first, and the artisans each one was
    already offered (the batched policy assigns them together)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT i.id, ST_Y(i.location::geometry) AS lat, ST_X(i.location::geometry) AS lon,
                  i.specialty, i.search_round,
                  ARRAY(SELECT o.artisan_id FROM offers o WHERE o.intervention_id = i.id)
                    AS asked
           FROM interventions i
           WHERE i.status = 'SEARCHING'
             AND NOT EXISTS (SELECT 1 FROM offers o
                             WHERE o.intervention_id = i.id AND o.status = 'PENDING')
           ORDER BY i.created_at, i.id
           LIMIT $1""",
        limit,
    )
    return rows


async def engaged_artisans(conn: asyncpg.Connection) -> list[uuid.UUID]:
    """Artisans answering an offer right now (each has at most one pending or held)."""
    rows = await conn.fetch("SELECT artisan_id FROM offers WHERE status IN ('PENDING', 'HELD')")
    return [r["artisan_id"] for r in rows]
