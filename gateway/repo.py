"""The gateway's SQL on `artisans`: the live profile a socket starts from, the
write-behind of positions and presence, and what the reconciler compares with. Each takes a connection (the caller owns the
transaction) and keyword-only arguments."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

_PROFILE = "SELECT user_id, status, level, rating, specialty FROM artisans"
_ACTIVE_SQL = "('ASSIGNED', 'EN_ROUTE', 'ARRIVED', 'IN_PROGRESS')"

# A row is rewritten only when something worth keeping changed: the status, a first
# position, a move of over `min_move_m`, or a last write older than `max_age_s`. An
# artisan waiting for work drifts a few metres per fix; rewriting all of them every
# flush (a new row version and an entry in each of the table's four indexes, GiST
# included) would be PostgreSQL's largest load and lengthen every commit. Rows that
# fail the test are neither written nor locked.
# PostgreSQL is the truth of BUSY (its job transactions write it, with the active job):
# the write-behind copies presence only, ONLINE or OFFLINE, never BUSY and never over a
# BUSY row, so a stale BUSY in Redis cannot reach it (gateway/reconciler.py repairs Redis).
_NEW_STATUS = """CASE WHEN a.current_status = 'BUSY' OR u.status = 'BUSY' THEN a.current_status
                      WHEN a.status = 'VERIFIED' AND u.status = 'ONLINE' THEN 'ONLINE'
                      ELSE 'OFFLINE' END"""
_WRITE_POSITIONS = f"""
UPDATE artisans AS a
   SET location = CASE WHEN u.lat IS NULL THEN a.location ELSE u.point END,
       location_updated_at = COALESCE(u.fix_at, a.location_updated_at),
       current_status = {_NEW_STATUS}
  FROM (SELECT id::uuid AS id, lat, to_timestamp(ts_ms / 1000.0) AS fix_at, status,
               ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography AS point
          FROM unnest($1::text[], $2::float8[], $3::float8[], $4::float8[], $5::text[])
               AS r(id, lat, lon, ts_ms, status)) AS u
 WHERE a.user_id = u.id AND a.user_id = ANY($1::uuid[])
   AND (a.current_status IS DISTINCT FROM {_NEW_STATUS}
        OR (u.lat IS NOT NULL
            AND (a.location IS NULL OR a.location_updated_at IS NULL
                 OR u.fix_at >= a.location_updated_at + make_interval(secs => $7)
                 OR NOT ST_DWithin(a.location, u.point, $6, false))))
"""


async def live_profile(conn: asyncpg.Connection, *, artisan_id: uuid.UUID) -> asyncpg.Record | None:
    """What the live state ranks on: status (verification), level, rating, specialty."""
    row: asyncpg.Record | None = await conn.fetchrow(f"{_PROFILE} WHERE user_id = $1", artisan_id)
    return row


async def live_profiles(
    conn: asyncpg.Connection, *, artisan_ids: Sequence[uuid.UUID]
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        f"{_PROFILE} WHERE user_id = ANY($1::uuid[])", list(artisan_ids)
    )
    return rows


async def write_positions(
    conn: asyncpg.Connection,
    *,
    ids: Sequence[str],
    lats: Sequence[float | None],
    lons: Sequence[float | None],
    ts_ms: Sequence[float | None],
    statuses: Sequence[str],
    min_move_m: float,
    max_age_s: float,
) -> None:
    """Last positions and presence statuses into PostgreSQL, one statement; in the
    caller's transaction, which this plans for the batch at hand.

    A prepared statement's one plan for every batch, made on a fresh database (never
    analyzed without autovacuum), hashes every artisan on each flush: a cost that grows
    with the fleet, not the batch (30,000 rows read for ~100 written). Planned for the
    batch, `user_id = ANY(ids)` finds its rows by index; at a flush a second the planning
    and the transaction's extra round trips cost little."""
    await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
    await conn.execute(_WRITE_POSITIONS, ids, lats, lons, ts_ms, statuses, min_move_m, max_age_s)


# The jobs' truth for the reconciler: the artisans that hold an active job, and those
# Redis says are BUSY or tracked (`$1`), with the job (if any) and the artisan's live
# version; with `every_busy` also every artisan PostgreSQL says is BUSY. The artisans are
# found through their ids (a semi-join on the primary key), so a pass reads O(jobs); only
# `current_status = 'BUSY'`, which no index serves (an index on it would make every
# presence change a non-HOT update), reads the whole table: full passes only.
def _job_truth_sql(*, every_busy: bool) -> str:
    busy = " UNION ALL SELECT user_id FROM artisans WHERE current_status = 'BUSY'"
    return f"""
SELECT a.user_id, a.current_status, a.live_version, i.id AS job_id, i.client_id,
       i.status AS job_status,
       ST_Y(i.location::geometry) AS job_lat, ST_X(i.location::geometry) AS job_lon
  FROM artisans a
  LEFT JOIN interventions i ON i.artisan_id = a.user_id AND i.status IN {_ACTIVE_SQL}
 WHERE a.user_id IN (SELECT unnest($1::uuid[])
                     UNION ALL SELECT artisan_id FROM interventions WHERE status IN {_ACTIVE_SQL}
                     {busy if every_busy else ""})
"""


_JOB_TRUTH = _job_truth_sql(every_busy=False)
_JOB_TRUTH_EVERY_BUSY = _job_truth_sql(every_busy=True)

# PostgreSQL's own BUSY made to agree with the jobs; a row whose version moved since it
# was read (a job change committed meanwhile) is left alone.
_REPAIR_BUSY = """
UPDATE artisans AS a
   SET current_status = r.status
  FROM unnest($1::uuid[], $2::bigint[], $3::text[]) AS r(id, version, status)
 WHERE a.user_id = r.id AND a.live_version = r.version
   AND a.current_status IS DISTINCT FROM r.status
   AND (r.status = 'OFFLINE' OR a.status = 'VERIFIED')
RETURNING a.user_id
"""


async def job_truth(
    conn: asyncpg.Connection, *, artisan_ids: Sequence[uuid.UUID], every_busy: bool
) -> list[asyncpg.Record]:
    sql = _JOB_TRUTH_EVERY_BUSY if every_busy else _JOB_TRUTH
    rows: list[asyncpg.Record] = await conn.fetch(sql, list(artisan_ids))
    return rows


async def repair_busy(
    conn: asyncpg.Connection,
    *,
    ids: Sequence[uuid.UUID],
    versions: Sequence[int],
    statuses: Sequence[str],
) -> list[uuid.UUID]:
    """Set each artisan's current_status (BUSY, or OFFLINE until the write-behind copies
    their presence) unless their live version moved; returns the ids changed."""
    rows = await conn.fetch(_REPAIR_BUSY, list(ids), list(versions), list(statuses))
    return [r["user_id"] for r in rows]
