"""The live-state reconciler: Redis converges on PostgreSQL's jobs.

PostgreSQL is the truth: an artisan holding an ASSIGNED, EN_ROUTE, ARRIVED or
IN_PROGRESS job is BUSY, and their client tracks them until IN_PROGRESS; anyone else is
not BUSY and tracked by nobody. The outbox writes the live state after each commit, but a
lost write (Redis error, crash between commit and write) or a corrupted hash would
otherwise stay wrong for good: a stale BUSY hides the artisan from matching, a stale
tracking record streams positions to a former client.

Every `reconcile_interval_s` one process (the leader, through a Redis key with a TTL)
reads Redis first (the artisans it says are BUSY or tracked, one SSCAN page per script
call, over the jobs set the scripts keep, or the whole fleet every `FULL_PASS_EVERY`
passes and on a leader's first pass), then PostgreSQL (by primary key: the artisans that
hold an active job, those Redis named and those the pass before found wrong; on a full
pass also every row it says is BUSY), and repairs each disagreement with the versioned
scripts of the outbox's own changes (gateway/lua.py), passing the live version it read:
a job change committed after that read carries a higher version, so a repair can never
undo it. PostgreSQL's own `current_status` is repaired the same way, guarded by the
version.

The jobs set holds every artisan the scripts made BUSY or tracked, so a lost write
heals at the pass rate while a pass reads O(jobs), not the fleet, in Redis and in
PostgreSQL (at 10,000 artisans the fleet scan cost Redis as much as a third of the fixes
did); only a hash changed outside the scripts, or a PostgreSQL BUSY that no job statement
wrote, waits for a full pass, which also adds the hash to the jobs set.

A disagreement is repaired only when the pass before saw it too, at the same version:
under load many changes are committed and not yet written to Redis when a pass reads
(the outbox writes after the commit), and "repairing" those raced the outbox every pass
and made the repair count meaningless. A lost write still heals within two passes.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web
from redis.asyncio import Redis

from core import appkeys, redis_keys
from gateway import appkeys as gateway_keys
from gateway import live, repo, tracking
from gateway.tasks import stop_tasks

log = logging.getLogger("zendo.gateway")

# Jobs during which the client receives the artisan's positions.
TRACKED_STATUSES = frozenset({"ASSIGNED", "EN_ROUTE", "ARRIVED"})
# Ids per SSCAN page: one script call holds Redis for well under a millisecond when idle
# (about 2 ms at a load average of 8 on two cores).
SCAN_PAGE = 500
# The leader's key lives this many passes: another process takes over that soon after
# the leader stops.
LEADER_PASSES = 3
# One pass in this many scans every artisan (30 s at the default 3-s interval).
FULL_PASS_EVERY = 10


@dataclass(frozen=True, slots=True)
class LiveJob:
    """What Redis says of an artisan it lists as BUSY or tracked."""

    busy: bool
    flagged: bool  # 'trk' in the hash: the fix script forwards positions
    tracked_job: str  # the tracking record's intervention id, "" when none


async def scan_redis(redis: Redis, *, full: bool) -> dict[str, LiveJob]:
    """The artisans Redis says are BUSY or tracked: from every live hash when `full`,
    else from the jobs set's (see SCAN_JOBS in gateway/lua.py)."""
    seen: dict[str, LiveJob] = {}
    cursor = "0"
    while True:
        cursor, packed = await live.SCAN_JOBS(
            redis,
            [
                redis_keys.LIVE_IDS if full else redis_keys.LIVE_JOBS,
                redis_keys.LIVE_ARTISAN_PREFIX,
                redis_keys.TRACKING_PREFIX,
                cursor,
                SCAN_PAGE,
                redis_keys.LIVE_JOBS,
            ],
        )
        for row in str(packed).split("\n"):
            if row:
                artisan_id, status, flag, job = row.split("|")
                seen[artisan_id] = LiveJob(
                    busy=status == "BUSY", flagged=flag == "1", tracked_job=job
                )
        if str(cursor) == "0":
            return seen


_NOTHING = LiveJob(busy=False, flagged=False, tracked_job="")


def _uuids(ids: Iterable[str]) -> list[uuid.UUID]:
    """The ids that are UUIDs (anything else in the ids set cannot be an artisan)."""
    out = []
    for artisan_id in ids:
        try:
            out.append(uuid.UUID(artisan_id))
        except ValueError:
            log.warning("reconciler: %r in the live ids is not an artisan id", artisan_id)
    return out


@dataclass(slots=True)
class Repairs:
    """What one pass changed (counted on /metrics by the caller)."""

    busy: int = 0
    freed: int = 0
    tracking_started: int = 0
    tracking_stopped: int = 0
    postgres: int = 0

    def total(self) -> int:
        return (
            self.busy + self.freed + self.tracking_started + self.tracking_stopped + self.postgres
        )


# An artisan's disagreement: (artisan id, PostgreSQL's live version, what disagrees).
Disagreement = tuple[str, int, str]


def _disagreements(row: asyncpg.Record, now: LiveJob) -> set[Disagreement]:
    aid, version = str(row["user_id"]), int(row["live_version"])
    has_job = row["job_id"] is not None
    out: set[Disagreement] = set()
    if has_job != now.busy:
        out.add((aid, version, "busy"))
    tracked = has_job and row["job_status"] in TRACKED_STATUSES
    if (tracked and (now.tracked_job != str(row["job_id"]) or not now.flagged)) or (
        not tracked and (now.flagged or now.tracked_job)
    ):
        out.add((aid, version, "tracking"))
    return out


def _queue_repairs(
    calls: live.ScriptCalls,
    redis: Redis,
    rows: Iterable[asyncpg.Record],
    seen: dict[str, LiveJob],
    repairs: Repairs,
    confirmed: set[Disagreement],
) -> list[live.Script]:
    scripts: list[live.Script] = []
    for row in rows:
        aid, version = str(row["user_id"]), int(row["live_version"])
        now = seen.get(aid, _NOTHING)
        has_job = row["job_id"] is not None
        if (aid, version, "busy") not in confirmed:
            pass
        elif has_job and not now.busy:
            live.SET_BUSY.queue(calls, redis, live.set_busy_args(aid, version))
            scripts.append(live.SET_BUSY)
            repairs.busy += 1
        elif not has_job and now.busy:
            live.SET_AVAILABLE.queue(calls, redis, live.set_available_args(aid, version))
            scripts.append(live.SET_AVAILABLE)
            repairs.freed += 1
        tracked = has_job and row["job_status"] in TRACKED_STATUSES
        if (aid, version, "tracking") not in confirmed:
            pass
        elif tracked and (now.tracked_job != str(row["job_id"]) or not now.flagged):
            args = tracking.start_args(
                artisan_id=aid,
                intervention_id=row["job_id"],
                client_id=row["client_id"],
                job_lat=row["job_lat"],
                job_lon=row["job_lon"],
                version=version,
            )
            live.TRACK_START.queue(calls, redis, args)
            scripts.append(live.TRACK_START)
            repairs.tracking_started += 1
        elif not tracked and (now.flagged or now.tracked_job):
            live.TRACK_STOP.queue(calls, redis, tracking.stop_args(artisan_id=aid, version=version))
            scripts.append(live.TRACK_STOP)
            repairs.tracking_stopped += 1
    return scripts


async def reconcile_once(
    redis: Redis,
    pool: asyncpg.Pool,
    *,
    seen_before: set[Disagreement] | None = None,
    full: bool = True,
) -> Repairs:
    """One pass: Redis read first, then PostgreSQL, then the repairs (module docstring).

    With `seen_before` (the disagreements of the pass before, updated in place) only
    those seen twice are repaired; without it every disagreement is. `full`: Redis's
    side from every live hash, not only the jobs set."""
    seen = await scan_redis(redis, full=full)
    ids = _uuids(seen)
    if seen_before:  # a PostgreSQL row found wrong last pass is read again, to confirm it
        ids += _uuids({aid for aid, _v, kind in seen_before if kind == "postgres"} - seen.keys())
    async with pool.acquire() as conn:
        rows = await repo.job_truth(conn, artisan_ids=ids, every_busy=full)
        found: set[Disagreement] = set()
        for r in rows:
            found |= _disagreements(r, seen.get(str(r["user_id"]), _NOTHING))
            if (r["job_id"] is not None) != (r["current_status"] == "BUSY"):
                found.add((str(r["user_id"]), int(r["live_version"]), "postgres"))
        if seen_before is not None:
            confirmed = found & seen_before
            seen_before.clear()
            seen_before.update(found - confirmed)
            found = confirmed
        # PostgreSQL's BUSY follows its jobs too (a row the version guard skips waits
        # for the next pass).
        wrong = [
            r for r in rows if (str(r["user_id"]), int(r["live_version"]), "postgres") in found
        ]
        fixed: list[uuid.UUID] = []
        if wrong:
            fixed = await repo.repair_busy(
                conn,
                ids=[r["user_id"] for r in wrong],
                versions=[r["live_version"] for r in wrong],
                statuses=["BUSY" if r["job_id"] is not None else "OFFLINE" for r in wrong],
            )
    repairs = Repairs(postgres=len(fixed))
    if fixed:  # the write-behind then copies their presence (ONLINE or OFFLINE)
        await redis.sadd(redis_keys.LIVE_DIRTY, *(str(a) for a in fixed))

    def fill(calls: live.ScriptCalls) -> list[live.Script]:
        return _queue_repairs(calls, redis, rows, seen, repairs, found)

    replies: list[Any] = await live.run_pipeline(redis, fill)
    for reply in replies:
        if isinstance(reply, Exception):
            log.warning("live-state repair failed: %r", reply)
    if repairs.total():
        log.info("reconciler repaired the live state: %s", repairs)
    return repairs


async def lead(redis: Redis, node_id: str, ttl_ms: int) -> bool:
    return bool(await live.LEAD(redis, [redis_keys.RECONCILER_LEADER, node_id, ttl_ms]))


async def run(app: web.Application) -> None:
    settings = app[appkeys.SETTINGS]
    interval = settings.reconcile_interval_s
    ttl_ms = int(interval * LEADER_PASSES * 1000)
    repaired = app[gateway_keys.GATEWAY].live_repairs
    disagreements: set[Disagreement] = set()
    passes = 0  # as leader, in a row: the first is full
    while True:
        await asyncio.sleep(interval)
        try:
            redis, pool = app[appkeys.REDIS], app[appkeys.PG_POOL]
            if await lead(redis, settings.node_id, ttl_ms):
                full = passes % FULL_PASS_EVERY == 0
                passes += 1
                repairs = await reconcile_once(redis, pool, seen_before=disagreements, full=full)
                repaired.inc(repairs.total())
            else:
                passes = 0
                disagreements.clear()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("reconciler pass failed: %r", exc)


async def reconciler_ctx(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(run(app), name="gateway-reconciler")
    yield
    await stop_tasks(task)
