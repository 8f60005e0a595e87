"""Live state that heals itself (issue 18): versioned writes, a write-behind that never
copies BUSY, and the reconciler repairing Redis from PostgreSQL's jobs within 10 s."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, cast

import asyncpg
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from core import appkeys, redis_keys
from core.effects import MarkAvailable, MarkBusy, TrackingStart, TrackingStop
from core.settings import Settings
from gateway import live, reconciler, repo, tracking, writebehind
from tests.factories import create_user, insert_intervention
from tests.gateway.conftest import MakeClient, connect, eventually, fix, new_artisan, recv_type

# The bound; the reconciler's pass is the default `reconcile_interval_s` (3 s).
HEALED_WITHIN_S = 10.0


async def _status(redis: Redis, aid: uuid.UUID | str) -> str | None:
    status = await redis.hget(redis_keys.live_artisan(str(aid)), "current_status")
    return cast("str | None", status)  # decoded replies


async def _online_artisan(
    client: TestClient[Any, Any], db: asyncpg.Connection, settings: Settings
) -> tuple[uuid.UUID, Any]:
    aid, token = await new_artisan(db, settings)
    ws = await connect(client, token)
    await ws.send_json(fix())
    redis = client.app[appkeys.REDIS]
    await eventually(lambda: _is(redis, aid, "ONLINE"))
    return aid, ws


async def _is(redis: Redis, aid: uuid.UUID, status: str) -> bool:
    return await _status(redis, aid) == status


async def test_a_stale_busy_in_redis_heals_and_never_reaches_postgres(
    make_client: MakeClient, db: asyncpg.Connection, gw_settings: Settings
) -> None:
    client = await make_client()  # default reconcile interval
    redis = client.app[appkeys.REDIS]
    aid, ws = await _online_artisan(client, db, gw_settings)
    # a lost or late write: BUSY without any job
    await live.set_busy(redis, aid)
    assert await redis.geopos(redis_keys.geo_online("PLUMBER"), str(aid)) == [None]
    assert await redis.sismember(redis_keys.LIVE_DIRTY, str(aid))  # the write-behind sees it
    await eventually(lambda: _is(redis, aid, "ONLINE"), within=HEALED_WITHIN_S)
    assert await redis.geopos(redis_keys.geo_online("PLUMBER"), str(aid)) != [None]
    assert await db.fetchval("SELECT current_status FROM artisans WHERE user_id = $1", aid) != (
        "BUSY"
    )
    # and presence ONLINE now says ONLINE again
    await ws.send_json({"type": "presence", "status": "ONLINE"})
    assert (await recv_type(ws, "presence"))["status"] == "ONLINE"
    await ws.close()


async def test_a_tracking_record_outliving_its_job_is_removed(
    make_client: MakeClient, db: asyncpg.Connection, gw_settings: Settings
) -> None:
    client = await make_client()
    redis = client.app[appkeys.REDIS]
    aid, ws = await _online_artisan(client, db, gw_settings)
    former_client = await create_user(db)
    job = await insert_intervention(db, client_id=former_client, artisan_id=aid, status="CANCELLED")
    # the cancel's stop was lost: the former client would keep getting positions
    await tracking.start_tracking(
        redis,
        artisan_id=aid,
        intervention_id=job,
        client_id=former_client,
        job_lat=48.8,
        job_lon=2.3,
    )
    await eventually(lambda: _gone(redis, aid), within=HEALED_WITHIN_S)
    await ws.close()


async def _gone(redis: Redis, aid: uuid.UUID) -> bool:
    flag = await redis.hget(redis_keys.live_artisan(str(aid)), "trk")
    return flag is None and not await redis.exists(redis_keys.tracking(str(aid)))


async def test_a_lost_accept_is_replayed_from_postgres(
    make_client: MakeClient, db: asyncpg.Connection, gw_settings: Settings
) -> None:
    """The opposite: PostgreSQL holds an active job, Redis never heard of it."""
    client = await make_client()
    redis = client.app[appkeys.REDIS]
    aid, ws = await _online_artisan(client, db, gw_settings)
    client_id = await create_user(db)
    job = await insert_intervention(db, client_id=client_id, artisan_id=aid, status="EN_ROUTE")
    await eventually(lambda: _is(redis, aid, "BUSY"), within=HEALED_WITHIN_S)
    record = await redis.hgetall(redis_keys.tracking(str(aid)))
    assert record["intervention_id"] == str(job) and record["client_id"] == str(client_id)
    # PostgreSQL's own BUSY follows its jobs as well
    assert await db.fetchval("SELECT current_status FROM artisans WHERE user_id = $1", aid) == (
        "BUSY"
    )
    await ws.close()


async def test_an_older_write_applied_late_cannot_undo_a_newer_one(
    gw: TestClient[Any, Any],
) -> None:
    redis = gw.app[appkeys.REDIS]
    state = gw.app[appkeys.LIVE_STATE]
    aid = uuid.uuid4()
    await live.connect_artisan(
        redis, str(aid), specialty="PLUMBER", level="STANDARD", rating=4.0, verified=True
    )
    job, client = uuid.uuid4(), uuid.uuid4()
    # the job ended (version 8) before its accept's writes (version 7) were applied
    await state.apply([TrackingStop(aid, 8), MarkAvailable(aid, 8)])
    await state.apply([MarkBusy(aid, 7), TrackingStart(aid, job, client, 48.8, 2.3, 7)])
    assert await _status(redis, aid) != "BUSY"
    assert not await redis.exists(redis_keys.tracking(str(aid)))
    assert await redis.hget(redis_keys.live_artisan(str(aid)), "trk") is None
    # a newer one does apply
    await state.apply([MarkBusy(aid, 9)])
    assert await _status(redis, aid) == "BUSY"
    # an artisan without a live hash keeps the version too: a late older BUSY stays out
    other = uuid.uuid4()
    await state.apply([MarkAvailable(other, 5)])
    await state.apply([MarkBusy(other, 4)])
    assert await _status(redis, other) != "BUSY"


async def test_a_pass_repairs_nothing_when_redis_agrees_and_survives_garbage(
    gw: TestClient[Any, Any],
) -> None:
    pool = gw.app[appkeys.PG_POOL]
    live_redis = gw.app[appkeys.REDIS]
    repairs = await reconciler.reconcile_once(live_redis, pool)
    assert repairs.total() == 0
    # garbage in the ids set does not stop a pass
    await live_redis.sadd(redis_keys.LIVE_IDS, "not-a-uuid")
    await live_redis.hset(redis_keys.live_artisan("not-a-uuid"), "current_status", "BUSY")
    assert (await reconciler.reconcile_once(live_redis, pool)).total() == 0


async def test_the_write_behind_never_copies_busy(
    gw: TestClient[Any, Any], db: asyncpg.Connection
) -> None:
    redis = gw.app[appkeys.REDIS]
    aid = await create_user(db, role="ARTISAN")
    await live.connect_artisan(
        redis, str(aid), specialty="PLUMBER", level="STANDARD", rating=4.0, verified=True
    )
    await live.set_busy(redis, aid)  # Redis says BUSY; PostgreSQL has no job
    await writebehind.flush_once(redis, gw.app[appkeys.PG_POOL])
    assert await db.fetchval("SELECT current_status FROM artisans WHERE user_id = $1", aid) == (
        "OFFLINE"
    )
    # nor overwrites PostgreSQL's own BUSY with Redis's presence
    await db.execute("UPDATE artisans SET current_status = 'BUSY' WHERE user_id = $1", aid)
    await live.set_available(redis, aid)
    await writebehind.flush_once(redis, gw.app[appkeys.PG_POOL])
    assert await db.fetchval("SELECT current_status FROM artisans WHERE user_id = $1", aid) == (
        "BUSY"
    )


async def test_one_process_leads_the_reconciler_until_it_stops_renewing(
    make_client: MakeClient,
) -> None:
    client = await make_client(run_background=False)  # no reconciler of its own
    redis = client.app[appkeys.REDIS]
    assert await reconciler.lead(redis, "node-a", 200)
    assert not await reconciler.lead(redis, "node-b", 200)
    assert await reconciler.lead(redis, "node-a", 200)  # the leader renews
    await asyncio.sleep(0.3)  # node-a stopped renewing: its key ran out
    assert await reconciler.lead(redis, "node-b", 200)
    assert not await reconciler.lead(redis, "node-a", 200)


async def test_a_disagreement_is_repaired_only_once_two_passes_saw_it(
    gw: TestClient[Any, Any], db: asyncpg.Connection
) -> None:
    """What the outbox has not written yet is not "repaired" under its feet."""
    redis = gw.app[appkeys.REDIS]
    pool = gw.app[appkeys.PG_POOL]
    aid = await create_user(db, role="ARTISAN")
    await live.connect_artisan(
        redis, str(aid), specialty="PLUMBER", level="STANDARD", rating=4.0, verified=True
    )
    await live.set_busy(redis, aid)  # Redis says BUSY; PostgreSQL has no job
    seen_before: set[reconciler.Disagreement] = set()
    first = await reconciler.reconcile_once(redis, pool, seen_before=seen_before)
    assert first.total() == 0 and await _status(redis, aid) == "BUSY"
    second = await reconciler.reconcile_once(redis, pool, seen_before=seen_before)
    assert second.freed == 1 and await _status(redis, aid) != "BUSY"
    assert seen_before == set()


async def test_most_passes_read_the_jobs_set_and_a_full_pass_finds_the_rest(
    gw: TestClient[Any, Any], db: asyncpg.Connection
) -> None:
    """A pass reads the artisans the scripts made BUSY or tracked, not the fleet; a hash
    changed outside the scripts is found by the next full pass, then repaired."""
    redis = gw.app[appkeys.REDIS]
    pool = gw.app[appkeys.PG_POOL]
    via_script = await create_user(db, role="ARTISAN")
    outside = await create_user(db, role="ARTISAN")
    for aid in (via_script, outside):
        await live.connect_artisan(
            redis, str(aid), specialty="PLUMBER", level="STANDARD", rating=4.0, verified=True
        )
    await live.set_busy(redis, via_script)
    await redis.hset(redis_keys.live_artisan(str(outside)), "current_status", "BUSY")
    assert await redis.smembers(redis_keys.LIVE_JOBS) == {str(via_script)}
    seen: set[reconciler.Disagreement] = set()
    await reconciler.reconcile_once(redis, pool, seen_before=seen, full=False)
    freed = await reconciler.reconcile_once(redis, pool, seen_before=seen, full=False)
    assert freed.freed == 1 and await _status(redis, via_script) != "BUSY"
    assert await _status(redis, outside) == "BUSY"  # not in the jobs set: not seen yet
    await reconciler.reconcile_once(redis, pool, seen_before=seen, full=True)
    assert await redis.smembers(redis_keys.LIVE_JOBS) == {str(via_script), str(outside)}
    freed = await reconciler.reconcile_once(redis, pool, seen_before=seen, full=False)
    assert freed.freed == 1 and await _status(redis, outside) != "BUSY"
    assert await redis.smembers(redis_keys.LIVE_JOBS) == {str(outside)}  # via_script: dropped
    await reconciler.reconcile_once(redis, pool, seen_before=seen, full=False)
    assert await redis.smembers(redis_keys.LIVE_JOBS) == set()
    # tracking puts an artisan in the jobs set too
    await tracking.start_tracking(
        redis, artisan_id=outside, intervention_id="job", client_id="c", job_lat=48.8, job_lon=2.3
    )
    assert await redis.smembers(redis_keys.LIVE_JOBS) == {str(outside)}


async def test_a_postgres_busy_without_a_job_is_found_by_a_full_pass_and_repaired_by_the_next(
    gw: TestClient[Any, Any], db: asyncpg.Connection
) -> None:
    """Only full passes look for a BUSY row that no job statement wrote (reading every
    artisan); the others read the artisans with a job, those Redis named and those the
    pass before found wrong (so the run loop's full pass, one in ten, still repairs)."""
    redis = gw.app[appkeys.REDIS]
    pool = gw.app[appkeys.PG_POOL]
    aid = await create_user(db, role="ARTISAN")
    await db.execute("UPDATE artisans SET current_status = 'BUSY' WHERE user_id = $1", aid)
    seen: set[reconciler.Disagreement] = set()
    for _ in range(2):
        repairs = await reconciler.reconcile_once(redis, pool, seen_before=seen, full=False)
        assert repairs.postgres == 0
    assert await db.fetchval("SELECT current_status FROM artisans WHERE user_id = $1", aid) == (
        "BUSY"
    )
    await reconciler.reconcile_once(redis, pool, seen_before=seen, full=True)
    # the pass after a full one reads again the rows the full one found wrong
    repairs = await reconciler.reconcile_once(redis, pool, seen_before=seen, full=False)
    assert repairs.postgres == 1
    assert await db.fetchval("SELECT current_status FROM artisans WHERE user_id = $1", aid) == (
        "OFFLINE"  # until the write-behind copies the presence Redis has
    )


async def test_a_pass_finds_its_artisans_by_primary_key_not_by_reading_the_fleet(
    db: asyncpg.Connection,
) -> None:
    """The plan a pass keeps for good (generic, as asyncpg's cached statement ends up
    with) probes artisans by key; a full pass's may read the table."""
    plans = {}
    for every_busy in (False, True):
        async with db.transaction():
            await db.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            await db.execute("SET LOCAL enable_seqscan = off")  # what an index can serve
            sql = repo._job_truth_sql(every_busy=every_busy)
            await db.execute(f"PREPARE truth_plan(uuid[]) AS {sql}")
            rows = await db.fetch("EXPLAIN EXECUTE truth_plan('{}')")
            await db.execute("DEALLOCATE truth_plan")
        plans[every_busy] = "\n".join(r[0] for r in rows)
    assert "Seq Scan on artisans" not in plans[False]
    assert "artisans_pkey" in plans[False]
    assert "Seq Scan on artisans" in plans[True]  # current_status = 'BUSY': no index
