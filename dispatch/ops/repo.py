"""SQL of the ops context. Functions take a connection; the caller owns the transaction."""

from __future__ import annotations

import uuid

import asyncpg

_JOB = """SELECT id, client_id, artisan_id, specialty, status,
                 ST_Y(location::geometry) AS lat, ST_X(location::geometry) AS lon,
                 created_at, updated_at, first_offer_at
          FROM interventions WHERE id = $1"""


async def intervention(
    conn: asyncpg.Connection, *, intervention_id: uuid.UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(_JOB, intervention_id)


async def status_events(
    conn: asyncpg.Connection, *, intervention_id: uuid.UUID
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT id, from_status, to_status, actor_id, actor_role, data, at
           FROM intervention_events WHERE intervention_id = $1 ORDER BY id""",
        intervention_id,
    )
    return rows


async def offers(conn: asyncpg.Connection, *, intervention_id: uuid.UUID) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT id, artisan_id, status, distance_km, score, created_at, expires_at,
                  responded_at
           FROM offers WHERE intervention_id = $1 ORDER BY created_at, id""",
        intervention_id,
    )
    return rows


# Jobs created in the window, by specialty and in total (ROLLUP: specialty NULL).
# Time to assign: the job's first move to ASSIGNED; time to first offer: the column
# the dispatcher stamps when the first offers go out.
_JOB_KPIS = """
WITH w AS (
  SELECT id, specialty, status, created_at, first_offer_at FROM interventions
  WHERE created_at > clock_timestamp() - make_interval(secs => $1)),
assigned AS (
  SELECT e.intervention_id, min(e.at) AS at FROM intervention_events e
  JOIN w ON w.id = e.intervention_id WHERE e.to_status = 'ASSIGNED'
  GROUP BY e.intervention_id),
offered AS (
  SELECT o.intervention_id,
         count(*) FILTER (WHERE o.status = 'ACCEPTED') AS accepted,
         count(*) FILTER (WHERE o.status IN ('ACCEPTED', 'DECLINED', 'EXPIRED')) AS answered
  FROM offers o JOIN w ON w.id = o.intervention_id GROUP BY o.intervention_id)
SELECT w.specialty,
       count(*) AS created,
       count(a.intervention_id) AS assigned,
       count(*) FILTER (WHERE w.status = 'UNFULFILLED') AS unfulfilled,
       percentile_cont(0.5) WITHIN GROUP (
         ORDER BY extract(epoch FROM w.first_offer_at - w.created_at)) AS first_offer_p50,
       percentile_cont(0.9) WITHIN GROUP (
         ORDER BY extract(epoch FROM w.first_offer_at - w.created_at)) AS first_offer_p90,
       percentile_cont(0.5) WITHIN GROUP (
         ORDER BY extract(epoch FROM a.at - w.created_at)) AS assign_p50,
       percentile_cont(0.9) WITHIN GROUP (
         ORDER BY extract(epoch FROM a.at - w.created_at)) AS assign_p90,
       coalesce(sum(o.accepted), 0)::bigint AS offers_accepted,
       coalesce(sum(o.answered), 0)::bigint AS offers_answered
FROM w LEFT JOIN assigned a ON a.intervention_id = w.id
       LEFT JOIN offered o ON o.intervention_id = w.id
GROUP BY ROLLUP (w.specialty)"""

_ARTISAN_KPIS = """
SELECT specialty,
       count(*) FILTER (WHERE current_status = 'ONLINE') AS online,
       count(*) FILTER (WHERE current_status = 'BUSY') AS busy
FROM artisans WHERE status = 'VERIFIED' GROUP BY ROLLUP (specialty)"""


async def job_kpis(conn: asyncpg.Connection, *, window_s: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(_JOB_KPIS, float(window_s))
    return rows


async def artisan_kpis(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(_ARTISAN_KPIS)
    return rows
