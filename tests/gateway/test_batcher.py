"""The location batcher: packed batches split into bounded script calls, latest fix per
artisan, accepted pings counted once per batch, a failed flush retried."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import h3
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from core import appkeys, redis_keys
from core.settings import Settings
from gateway import live, tracking, writebehind
from gateway.location import H3_RESOLUTION, FixValidator, LocationBatcher, TrackedFix
from gateway.mirror import parse_event
from gateway.presence_writes import PresenceWrites
from tests.gateway.conftest import eventually, new_artisan, now_ms


async def _profiles(redis: Redis, n: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(n)]
    for aid in ids:
        await live.connect_artisan(
            redis, aid, specialty="GLAZIER", level="STANDARD", rating=4.0, verified=True
        )
    return ids


async def test_a_batch_larger_than_a_chunk_is_written_whole_with_the_latest_fix_each(
    gw: TestClient[Any, Any],
) -> None:
    redis = gw.app[appkeys.REDIS]
    ids = await _profiles(redis, 7)
    accepted: list[int] = []
    tracked: list[list[TrackedFix]] = []

    async def on_tracked(entries: list[TrackedFix]) -> None:
        tracked.append(entries)

    batcher = LocationBatcher(redis, chunk=3, on_tracked=on_tracked, on_accepted=accepted.append)
    ts = now_ms()
    for k, aid in enumerate(ids):
        batcher.add(aid, (48.80 + k * 0.01, 2.30, ts, None))
        batcher.add(aid, (48.80 + k * 0.01, 2.31, ts + 1000, 90.0))  # the newer one wins
    await tracking.start_tracking(
        redis,
        artisan_id=ids[0],
        intervention_id="job-1",
        client_id="client-1",
        job_lat=48.81,
        job_lon=2.30,
    )
    task = asyncio.create_task(batcher.run())
    try:
        await eventually(lambda: _async(batcher.flushed == 7))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert batcher.batches == 1 and accepted == [14]
    for k, aid in enumerate(ids):
        state = await live.read_live(redis, aid)
        lat = 48.80 + k * 0.01
        assert state == {
            "lat": lat,
            "lon": 2.31,
            "ts": ts + 1000,
            "h3": h3.latlng_to_cell(lat, 2.31, H3_RESOLUTION),
            "current_status": "ONLINE",
        }
        assert await redis.zscore(redis_keys.LIVE_FRESH, aid) == ts + 1000
    # Tracking comes back from the same script call: only the tracked artisan, newest fix.
    assert [e[:3] + e[5:] for batch in tracked for e in batch] == [
        [ids[0], "job-1", "client-1", "48.8", "2.31", str(ts + 1000), "90.0"]
    ]
    # Three script calls (3 + 3 + 1 fixes): three stream entries, one row per artisan.
    events = [f for _i, f in await redis.xrange(redis_keys.ARTISAN_EVENTS) if f["k"] == "fix"]
    ours = [[r for r in parse_event(f["d"]) if r[0] in ids] for f in events]
    assert sorted(len(rows) for rows in ours if rows) == [1, 3, 3]


async def test_an_older_fix_never_overwrites_a_newer_one(gw: TestClient[Any, Any]) -> None:
    redis = gw.app[appkeys.REDIS]
    (aid,) = await _profiles(redis, 1)

    async def ignore(_entries: list[TrackedFix]) -> None:
        return None

    batcher = LocationBatcher(redis, chunk=10, on_tracked=ignore)
    ts = now_ms()
    await batcher.flush({aid: (48.85, 2.35, ts, None)})
    await batcher.flush({aid: (48.70, 2.35, ts - 5000, None)})  # e.g. another socket, late
    state = await live.read_live(redis, aid)
    assert state is not None and state["lat"] == 48.85 and state["ts"] == ts


async def test_a_flush_after_a_script_flush_loads_the_script_and_writes_every_chunk(
    gw: TestClient[Any, Any],
) -> None:
    redis = gw.app[appkeys.REDIS]
    ids = await _profiles(redis, 3)
    batcher = LocationBatcher(redis, chunk=2, on_tracked=_ignore)  # two script calls
    ts = now_ms()
    await redis.script_flush()  # as after a Redis restart: the calls meet NOSCRIPT
    await batcher.flush({aid: (48.85 + k * 0.01, 2.35, ts, None) for k, aid in enumerate(ids)})
    for k, aid in enumerate(ids):
        state = await live.read_live(redis, aid)
        assert state is not None and state["lat"] == 48.85 + k * 0.01 and state["ts"] == ts
    assert (batcher.batches, batcher.flushed) == (1, 3)


async def test_a_failed_flush_keeps_the_batch_and_newer_fixes_win(
    gw: TestClient[Any, Any],
) -> None:
    redis = gw.app[appkeys.REDIS]
    ids = await _profiles(redis, 2)
    batcher = LocationBatcher(redis, chunk=10, on_tracked=_ignore)
    real_flush = batcher.flush
    calls: list[tuple[dict[str, Any], set[str]]] = []

    async def flaky(batch: dict[str, Any], moved: set[str]) -> None:
        calls.append((dict(batch), set(moved)))
        if len(calls) == 1:
            # arrives during the failure, and did not move: the failed one's move stays
            batcher.add(ids[0], (48.90, 2.35, ts + 500, None), moved=False)
            raise ConnectionError("redis went away")
        await real_flush(batch, moved)

    batcher.flush = flaky  # type: ignore[method-assign, assignment]
    ts = now_ms()
    batcher.add(ids[0], (48.85, 2.35, ts, None), moved=True)
    batcher.add(ids[1], (48.86, 2.35, ts, None), moved=False)
    task = asyncio.create_task(batcher.run())
    try:
        await eventually(lambda: _async(batcher.flushed == 2))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert calls[1] == (
        {ids[0]: (48.90, 2.35, ts + 500, None), ids[1]: (48.86, 2.35, ts, None)},
        {ids[0]},
    )
    first = await live.read_live(redis, ids[0])
    assert first is not None and first["lat"] == 48.90


async def test_flushes_are_at_least_a_linger_apart_and_the_first_goes_at_once(
    gw: TestClient[Any, Any],
) -> None:
    redis = gw.app[appkeys.REDIS]
    ids = await _profiles(redis, 3)
    flushed_at: list[tuple[float, int]] = []

    async def ignore(_entries: list[TrackedFix]) -> None:
        return None

    batcher = LocationBatcher(redis, chunk=10, on_tracked=ignore, linger_s=0.2)
    real_flush = batcher.flush

    async def timed(batch: dict[str, Any], moved: set[str]) -> None:
        flushed_at.append((asyncio.get_running_loop().time(), len(batch)))
        await real_flush(batch, moved)

    batcher.flush = timed  # type: ignore[method-assign, assignment]
    task = asyncio.create_task(batcher.run())
    try:
        ts = now_ms()
        started = asyncio.get_running_loop().time()
        batcher.add(ids[0], (48.85, 2.35, ts, None))
        await eventually(lambda: _async(batcher.flushed == 1))
        batcher.add(ids[1], (48.85, 2.35, ts, None))  # these two wait for the linger...
        await asyncio.sleep(0.05)
        batcher.add(ids[2], (48.85, 2.35, ts, None))
        await eventually(lambda: _async(batcher.flushed == 3))  # ...and go out together
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    (first, n_first), (second, n_second) = flushed_at
    assert first - started < 0.1 and n_first == 1  # an idle batcher does not linger
    assert second - first >= 0.2 - 0.005 and n_second == 2
    assert await live.read_live(redis, ids[2]) is not None


async def test_write_behind_pops_packed_rows_into_postgres_in_one_statement(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    """A dirty id without a live hash (or a PostgreSQL row) is popped and ignored."""
    redis = gw.app[appkeys.REDIS]
    ts = now_ms() - 1234
    artisans = [(await new_artisan(db, gw_settings))[0] for _ in range(2)]
    for k, aid in enumerate(artisans):
        await live.connect_artisan(
            redis, str(aid), specialty="PLUMBER", level="STANDARD", rating=4.5, verified=True
        )
        await redis.hset(
            redis_keys.live_artisan(str(aid)),
            mapping={"lat": 48.8 + k / 10, "lon": 2.3, "ts": ts},
        )
        await live.set_available(redis, aid)
    await redis.sadd(redis_keys.LIVE_DIRTY, str(uuid.uuid4()))
    popped = 0
    while n := await writebehind.flush_once(redis, gw.app[appkeys.PG_POOL]):
        popped += n  # the app's own write-behind may take some of them first
    assert popped <= 3 and await redis.scard(redis_keys.LIVE_DIRTY) == 0
    for k, aid in enumerate(artisans):
        row = await db.fetchrow(
            """SELECT ST_Y(location::geometry) AS lat, ST_X(location::geometry) AS lon,
                      location_updated_at, current_status FROM artisans WHERE user_id = $1""",
            aid,
        )
        assert abs(row["lat"] - (48.8 + k / 10)) < 1e-9 and abs(row["lon"] - 2.3) < 1e-9
        assert int(row["location_updated_at"].timestamp() * 1000) == ts
        assert row["current_status"] == "ONLINE"


async def _async(value: bool) -> bool:
    return value


async def test_write_behind_rewrites_a_row_only_when_it_moved_aged_or_changed_status(
    make_client: Any, db: asyncpg.Connection, gw_settings: Settings
) -> None:
    gw = await make_client(run_background=False)  # only this test's flushes write
    redis = gw.app[appkeys.REDIS]
    pool = gw.app[appkeys.PG_POOL]
    aid = (await new_artisan(db, gw_settings))[0]
    await live.connect_artisan(
        redis, str(aid), specialty="PLUMBER", level="STANDARD", rating=4.5, verified=True
    )
    # In the past (the fixes below span 63 s) but well inside set_available's 2-minute
    # recency window: exactly 120 s ago made ONLINE depend on the millisecond (flaky).
    t0 = now_ms() - 100_000
    await redis.hset(redis_keys.live_artisan(str(aid)), mapping={"lat": 48.8, "lon": 2.3, "ts": t0})
    await live.set_available(redis, aid)  # ONLINE needs a position

    async def fix_and_flush(lat: float, ts: int) -> asyncpg.Record:
        await redis.hset(
            redis_keys.live_artisan(str(aid)), mapping={"lat": lat, "lon": 2.3, "ts": ts}
        )
        await redis.sadd(redis_keys.LIVE_DIRTY, str(aid))
        assert await writebehind.flush_once(redis, pool) == 1
        row = await db.fetchrow(
            """SELECT xmin::text::bigint AS version, ST_Y(location::geometry) AS lat,
                      location_updated_at, current_status FROM artisans WHERE user_id = $1""",
            aid,
        )
        assert row is not None
        return row

    first = await fix_and_flush(48.8, t0)  # the first position is always written
    assert abs(first["lat"] - 48.8) < 1e-9 and first["current_status"] == "ONLINE"
    # ~5.6 m away, 1 s later: not rewritten (same row version, first fix kept).
    drift = await fix_and_flush(48.80005, t0 + 1_000)
    assert drift["version"] == first["version"]
    assert int(drift["location_updated_at"].timestamp() * 1000) == t0
    # ~110 m away: rewritten.
    moved = await fix_and_flush(48.801, t0 + 2_000)
    assert moved["version"] != first["version"] and abs(moved["lat"] - 48.801) < 1e-9
    # Standing still, but the last write is 60 s old: rewritten with the new time.
    aged = await fix_and_flush(48.801, t0 + 62_000)
    assert aged["version"] != moved["version"]
    assert int(aged["location_updated_at"].timestamp() * 1000) == t0 + 62_000
    # Standing still, presence changed: rewritten (BUSY is PostgreSQL's own: never copied).
    assert await PresenceWrites(lambda: redis).set(str(aid), "OFFLINE", 120_000) == "OFFLINE"
    off = await fix_and_flush(48.801, t0 + 63_000)
    assert off["version"] != aged["version"] and off["current_status"] == "OFFLINE"


async def test_a_fix_marks_the_write_behind_only_when_postgresql_would_rewrite_the_row(
    make_client: Any, db: asyncpg.Connection, gw_settings: Settings
) -> None:
    """The fix script skips the dirty set (and the write-behind's read of the hash) for a
    fix within 25 m and 60 s of the socket's last such fix, with the status PostgreSQL
    was last handed."""
    gw = await make_client(run_background=False)  # only this test's flushes write
    redis = gw.app[appkeys.REDIS]
    pool = gw.app[appkeys.PG_POOL]
    aid = str((await new_artisan(db, gw_settings))[0])
    await live.connect_artisan(
        redis, aid, specialty="PLUMBER", level="STANDARD", rating=4.5, verified=True
    )
    batcher = LocationBatcher(redis, chunk=10, on_tracked=_ignore)
    validator = FixValidator(1.0, move_m=25.0, age_s=60.0)
    t0 = now_ms() - 100_000

    async def fix(lat: float, ts: int) -> bool:
        await _flush_moving(batcher, validator, aid, lat, 2.3, ts)
        return bool(await redis.sismember(redis_keys.LIVE_DIRTY, aid))

    assert await fix(48.8, t0)  # a first position
    assert await writebehind.flush_once(redis, pool) == 1
    assert not await fix(48.80004, t0 + 1_000)  # 4 m: PostgreSQL keeps its row
    assert not await fix(48.80018, t0 + 2_000)  # 20 m from what it was handed
    assert await fix(48.8003, t0 + 3_000)  # 33 m: rewritten
    assert await writebehind.flush_once(redis, pool) == 1
    assert not await fix(48.8003, t0 + 30_000)
    assert await fix(48.8003, t0 + 63_000)  # 60 s after the position it was handed
    assert await writebehind.flush_once(redis, pool) == 1
    # a status other than the one PostgreSQL was handed, without a move
    await redis.hset(redis_keys.live_artisan(aid), "current_status", "OFFLINE")
    await redis.hset(redis_keys.live_artisan(aid), "avail", "0")
    assert await fix(48.8003, t0 + 64_000)
    assert await writebehind.flush_once(redis, pool) == 1
    await live.set_busy(redis, aid)  # a status change always reaches it
    assert await redis.sismember(redis_keys.LIVE_DIRTY, aid)


async def test_only_a_tracked_artisans_fixes_are_forwarded(
    gw: TestClient[Any, Any],
) -> None:
    redis = gw.app[appkeys.REDIS]
    (aid,) = await _profiles(redis, 1)
    forwarded: list[TrackedFix] = []

    async def on_tracked(entries: list[TrackedFix]) -> None:
        forwarded.extend(entries)

    batcher = LocationBatcher(redis, chunk=10, on_tracked=on_tracked)
    ts = now_ms()
    await tracking.start_tracking(
        redis,
        artisan_id=aid,
        intervention_id="job-1",
        client_id="client-1",
        job_lat=48.8,
        job_lon=2.3,
    )
    await batcher.flush({aid: (48.8, 2.3, ts, None)})
    assert [e[:3] for e in forwarded] == [[aid, "job-1", "client-1"]]
    await tracking.stop_tracking(redis, artisan_id=aid)
    await batcher.flush({aid: (48.8, 2.3, ts + 1, None)})
    assert len(forwarded) == 1  # nothing more once tracking stopped
    assert not await redis.exists(redis_keys.tracking(aid))


async def _flush_moving(
    batcher: LocationBatcher, validator: FixValidator, aid: str, lat: float, lon: float, ts: int
) -> None:
    """One fix as the socket handler hands it over: flagged by the validator's rule."""
    moved = validator.moved(lat, lon, ts)
    await batcher.flush({aid: (lat, lon, ts, None)}, {aid} if moved else set())


async def _ignore(_entries: list[TrackedFix]) -> None:
    return None


async def test_a_fix_reaches_the_stream_only_when_it_moves_postgresqls_copy(
    gw: TestClient[Any, Any],
) -> None:
    """Every fix updates the hash; the GEO set, the index mirrors and the ops feed
    follow only a fix that the write-behind would write: a status change, a move of
    over 25 m, or 60 s since the socket's last such fix."""
    redis = gw.app[appkeys.REDIS]
    (aid,) = await _profiles(redis, 1)
    validator = FixValidator(1.0)

    async def ignore(_entries: list[TrackedFix]) -> None:
        return None

    async def rows_of_fixes() -> list[tuple[str, ...]]:
        events = await redis.xrange(redis_keys.ARTISAN_EVENTS)
        return [
            r for _i, f in events if f["k"] == "fix" for r in parse_event(f["d"]) if r[0] == aid
        ]

    batcher = LocationBatcher(redis, chunk=10, on_tracked=ignore)
    ts = now_ms()
    await _flush_moving(batcher, validator, aid, 48.85, 2.35, ts)  # OFFLINE -> ONLINE
    assert [r[1:3] for r in await rows_of_fixes()] == [("48.85", "2.35")]
    await writebehind.flush_once(redis, gw.app[appkeys.PG_POOL])  # hands 48.85 to PostgreSQL
    await _flush_moving(batcher, validator, aid, 48.8501, 2.35, ts + 1000)  # 11 m
    state = await live.read_live(redis, aid)
    assert state is not None and state["lat"] == 48.8501
    pos = await redis.geopos(redis_keys.geo_online("GLAZIER"), aid)
    assert abs(pos[0][1] - 48.85) < 1e-5
    assert len(await rows_of_fixes()) == 1
    assert not await redis.sismember(redis_keys.LIVE_DIRTY, aid)
    await _flush_moving(batcher, validator, aid, 48.8504, 2.35, ts + 2000)  # 44 m from 48.85
    assert [r[1:3] for r in await rows_of_fixes()] == [("48.85", "2.35"), ("48.8504", "2.35")]
    # the row carries the profile, read only for such a fix
    assert [r[3:6] for r in await rows_of_fixes()] == [("GLAZIER", "STANDARD", "4.0")] * 2
    pos = await redis.geopos(redis_keys.geo_online("GLAZIER"), aid)
    assert abs(pos[0][1] - 48.8504) < 1e-5
    assert await redis.sismember(redis_keys.LIVE_DIRTY, aid)
    await writebehind.flush_once(redis, gw.app[appkeys.PG_POOL])
    await _flush_moving(batcher, validator, aid, 48.8504, 2.35, ts + 62_000)  # 60 s later
    assert len(await rows_of_fixes()) == 3


def test_a_fix_moved_when_it_is_the_sockets_first_or_25_m_or_60_s_from_the_last_that_did() -> None:
    validator = FixValidator(1.0, move_m=25.0, age_s=60.0)
    assert validator.moved(48.85, 2.35, 0)  # the socket's first fix
    assert not validator.moved(48.8502, 2.35, 1_000)  # 22 m north
    assert not validator.moved(48.85, 2.3503, 2_000)  # 22 m east
    assert validator.moved(48.8503, 2.35, 3_000)  # 33 m from the first: the new reference
    assert not validator.moved(48.8505, 2.35, 4_000)  # 22 m from it, 68 m from the first
    assert not validator.moved(48.8503, 2.35, 62_999)
    assert validator.moved(48.8503, 2.35, 63_000)  # 60 s, in place
