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


async def status_of(conn: asyncpg.Connection, *, intervention_id: uuid.UUID) -> str | None:
    """The job's status (None: no such job); one statement, no lock."""
    status: str | None = await conn.fetchval(
        "SELECT status FROM interventions WHERE id = $1", intervention_id
    )
    return status


async def list_for(
    conn: asyncpg.Connection,
    *,
    client_id: uuid.UUID | None = None,
    artisan_id: uuid.UUID | None = None,
    status: str | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Newest first; by client, by artisan, or (neither given) everyone's."""
    where = ["($1::text IS NULL OR status = $1)"]
    args: list[object] = [status, limit]
    if client_id is not None:
        args.append(client_id)
        where.append(f"client_id = ${len(args)}")
    if artisan_id is not None:
        args.append(artisan_id)
        where.append(f"artisan_id = ${len(args)}")
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT {COLUMNS} FROM interventions WHERE {" AND ".join(where)}
            ORDER BY created_at DESC, id LIMIT $2""",
        *args,
    )
    return rows


def transition_ctes(
    *,
    job_id: str,
    expected: str,
    target: str,
    actor_role: str,
    actor_id: str,
    data: str = "NULL",
    artisan_id: str = "NULL",
    clear_artisan: bool = False,
    guard: str = "TRUE",
) -> str:
    """The one door every status change goes through, as two CTEs for a bigger statement.

    Asks the state machine first (IllegalTransition, 409, for a forbidden move), then
    writes `moved` (the conditional UPDATE: `WHERE status = expected AND guard`,
    RETURNING *) and its intervention_events row: no row, no event. `expected`,
    `target` and `actor_role` are checked names, inlined; the other arguments are SQL
    expressions (placeholders or CTE lookups) of the enclosing statement."""
    check_transition(expected, target, actor_role)
    new_artisan = "NULL" if clear_artisan else f"COALESCE({artisan_id}, artisan_id)"
    # Back on the market: due for a step now, and a new search from round 0.
    next_check = "clock_timestamp()" if target == "SEARCHING" else "NULL"
    search_round = "0" if clear_artisan else "search_round"
    search_started = "clock_timestamp()" if clear_artisan else "search_started_at"
    return f"""moved AS (
              UPDATE interventions SET
                status = '{target}',
                artisan_id = {new_artisan},
                next_check_at = {next_check},
                search_round = {search_round},
                search_started_at = {search_started},
                updated_at = clock_timestamp()
              WHERE id = {job_id} AND status = '{expected}' AND {guard}
              RETURNING *),
            moved_event AS (
              INSERT INTO intervention_events
                (intervention_id, from_status, to_status, actor_id, actor_role, data, at)
              SELECT id, '{expected}', '{target}', {actor_id}, '{actor_role}',
                     {data}::jsonb, clock_timestamp() FROM moved)"""


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
    """One status change in one round trip (see `transition_ctes`); None when the job is
    no longer in `expected`. Raises IllegalTransition (409) for a forbidden move."""
    args: list[Any] = [intervention_id, actor_id, data]
    if not clear_artisan:
        args.append(artisan_id)
    ctes = transition_ctes(
        job_id="$1",
        expected=expected,
        target=target,
        actor_role=actor_role,
        actor_id="$2::uuid",
        data="$3",
        artisan_id="$4::uuid",
        clear_artisan=clear_artisan,
    )
    return await conn.fetchrow(f"WITH {ctes} SELECT {COLUMNS} FROM moved", *args)


async def advance_own(
    conn: asyncpg.Connection,
    *,
    intervention_id: uuid.UUID,
    artisan_id: uuid.UUID,
    expected: str,
    target: str,
    start_code: str | None,
    free_artisan: bool,
    max_start_code_failures: int,
    new_live_version: bool = False,
) -> asyncpg.Record | None:
    """The assigned artisan moves their job on, in ONE statement (no BEGIN/COMMIT round
    trips): through the status door, only if it is theirs, in `expected`, and (when
    given) the start code matches and the job still takes codes; with `free_artisan` the
    artisan is ONLINE again in the same statement, and with it or `new_live_version` (a
    change of the live state, such as the end of tracking) the artisan's `live_version`
    moves on and is returned. None when nothing moved (the caller finds out why)."""
    ctes = transition_ctes(
        job_id="$1",
        expected=expected,
        target=target,
        actor_role="ARTISAN",
        actor_id="$2::uuid",
        guard="artisan_id = $2 AND ($3::text IS NULL OR "
        f"(start_code = $3::text AND start_code_failures < {int(max_start_code_failures)}))",
    )
    freed, version = "", "NULL::bigint"
    if free_artisan or new_live_version:
        online = "current_status = 'ONLINE', " if free_artisan else ""
        freed = f""", freed AS (
              UPDATE artisans SET {online}live_version = nextval('artisan_live_version')
              WHERE user_id = $2 AND EXISTS (SELECT 1 FROM moved)
              RETURNING live_version)"""
        version = "(SELECT live_version FROM freed)"
    return await conn.fetchrow(
        f"WITH {ctes}{freed} SELECT {COLUMNS}, {version} AS live_version FROM moved",
        intervention_id,
        artisan_id,
        start_code,
    )


async def start_code_failures(conn: asyncpg.Connection, *, intervention_id: uuid.UUID) -> int:
    failures: int | None = await conn.fetchval(
        "SELECT start_code_failures FROM interventions WHERE id = $1", intervention_id
    )
    return failures or 0


async def record_start_code_failure(
    conn: asyncpg.Connection,
    *,
    intervention_id: uuid.UUID,
    expected: str,
    new_code: str,
    reissue_every: int,
    max_failures: int,
) -> asyncpg.Record | None:
    """Count one wrong start code; every `reissue_every`-th replaces the code with
    `new_code` (unless that failure reaches `max_failures`: then the job takes no more
    codes). None when the job is no longer in `expected` or already at the cap."""
    row: asyncpg.Record | None = await conn.fetchrow(
        """UPDATE interventions SET
             start_code_failures = start_code_failures + 1,
             start_code = CASE
               WHEN (start_code_failures + 1) % $3 = 0 AND start_code_failures + 1 < $4
               THEN $5 ELSE start_code END
           WHERE id = $1 AND status = $2 AND start_code_failures < $4
           RETURNING id, client_id, start_code, start_code_failures,
                     start_code_failures % $3 = 0 AND start_code_failures < $4 AS reissued""",
        intervention_id,
        expected,
        reissue_every,
        max_failures,
        new_code,
    )
    return row


async def events(conn: asyncpg.Connection, *, intervention_id: uuid.UUID) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT from_status, to_status, actor_id, actor_role, data, at
           FROM intervention_events WHERE intervention_id = $1 ORDER BY id""",
        intervention_id,
    )
    return rows


async def new_live_version(conn: asyncpg.Connection, *, artisan_id: uuid.UUID) -> int:
    """A change of the artisan's live state without a new status (tracking ends)."""
    version: int = await conn.fetchval(
        """UPDATE artisans SET live_version = nextval('artisan_live_version')
           WHERE user_id = $1 RETURNING live_version""",
        artisan_id,
    )
    return version


async def set_artisan_current_status(
    conn: asyncpg.Connection, *, artisan_id: uuid.UUID, current_status: str
) -> int:
    """A change of the artisan's job status; returns its new live version (migration 011)."""
    version: int = await conn.fetchval(
        """UPDATE artisans SET current_status = $2,
                               live_version = nextval('artisan_live_version')
           WHERE user_id = $1 RETURNING live_version""",
        artisan_id,
        current_status,
    )
    return version


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
