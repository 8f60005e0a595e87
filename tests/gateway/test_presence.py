"""Presence: ONLINE on a fix (verified only), OFFLINE on request or after the grace,
BUSY from dispatch, and the PostgreSQL write-behind."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any, cast

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from core import appkeys, redis_keys
from core.settings import Settings
from gateway import appkeys as gateway_keys
from gateway import live, presence
from gateway.location import LocationBatcher, TrackedFix
from tests.gateway.conftest import connect, eventually, fix, new_artisan, now_ms, recv_type


async def _status(client: TestClient[Any, Any], artisan_id: uuid.UUID) -> str | None:
    status = await client.app[appkeys.REDIS].hget(
        redis_keys.live_artisan(str(artisan_id)), "current_status"
    )
    return cast("str | None", status)  # decoded replies


async def _in_geo(client: TestClient[Any, Any], artisan_id: uuid.UUID, specialty: str) -> bool:
    score = await client.app[appkeys.REDIS].zscore(
        redis_keys.geo_online(specialty), str(artisan_id)
    )
    return score is not None


async def test_first_fix_makes_a_verified_artisan_online_and_presence_offline_removes_them(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    artisan_id, token = await new_artisan(db, gw_settings, specialty="HEATING")
    ws = await connect(gw, token)
    assert await _status(gw, artisan_id) == "OFFLINE"
    await ws.send_json(fix())
    await eventually(lambda: _in_geo(gw, artisan_id, "HEATING"))
    assert await _status(gw, artisan_id) == "ONLINE"

    await ws.send_json({"type": "presence", "status": "OFFLINE"})
    assert (await recv_type(ws, "presence"))["status"] == "OFFLINE"
    assert not await _in_geo(gw, artisan_id, "HEATING")
    # fixes while OFFLINE update the position but do not bring them back
    await ws.send_json(fix(48.8567, 2.3522, now_ms() + 1000))
    await eventually(lambda: _ts_at_least(gw, artisan_id))
    assert await _status(gw, artisan_id) == "OFFLINE"

    await ws.send_json({"type": "presence", "status": "ONLINE"})
    assert (await recv_type(ws, "presence"))["status"] == "ONLINE"
    assert await _in_geo(gw, artisan_id, "HEATING")
    await ws.close()


async def _ts_at_least(client: TestClient[Any, Any], artisan_id: uuid.UUID) -> bool:
    state = await live.read_live(client.app[appkeys.REDIS], artisan_id)
    return state is not None and state["lat"] == 48.8567


async def test_presence_online_without_a_fix_stays_offline(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    _artisan_id, token = await new_artisan(db, gw_settings)
    ws = await connect(gw, token)
    await ws.send_json({"type": "presence", "status": "ONLINE"})
    assert (await recv_type(ws, "presence"))["status"] == "OFFLINE"
    await ws.close()


async def test_unverified_artisan_cannot_go_online(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    artisan_id, token = await new_artisan(db, gw_settings, artisan_status="PENDING")
    ws = await connect(gw, token)
    await ws.send_json({"type": "presence", "status": "ONLINE"})
    assert (await recv_type(ws, "error"))["code"] == "not_verified"
    await ws.send_json(fix())
    assert (await recv_type(ws, "error"))["code"] == "not_verified"
    await eventually(lambda: live.read_live(gw.app[appkeys.REDIS], artisan_id))
    assert await _status(gw, artisan_id) == "OFFLINE"
    assert not await _in_geo(gw, artisan_id, "PLUMBER")
    await ws.close()


async def test_offline_after_grace_once_the_last_socket_closed(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    artisan_id, token = await new_artisan(db, gw_settings)
    first = await connect(gw, token)
    second = await connect(gw, token)
    await first.send_json(fix())
    await eventually(lambda: _is(gw, artisan_id, "ONLINE"))
    await first.close()
    loop = asyncio.get_running_loop()
    await asyncio.sleep(gw_settings.ws_offline_grace_s + 0.5)
    assert await _status(gw, artisan_id) == "ONLINE"  # a socket is still open
    closed_at = loop.time()
    await second.close()
    await eventually(lambda: _is(gw, artisan_id, "OFFLINE"), within=5.0)
    assert loop.time() - closed_at >= gw_settings.ws_offline_grace_s - 0.05
    assert not await _in_geo(gw, artisan_id, "PLUMBER")


async def test_reconnect_within_grace_stays_online(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    artisan_id, token = await new_artisan(db, gw_settings)
    ws = await connect(gw, token)
    await ws.send_json(fix())
    await eventually(lambda: _is(gw, artisan_id, "ONLINE"))
    await ws.close()
    again = await connect(gw, token)
    await asyncio.sleep(gw_settings.ws_offline_grace_s + 0.6)
    assert await _status(gw, artisan_id) == "ONLINE"
    await again.close()


async def _is(client: TestClient[Any, Any], artisan_id: uuid.UUID, status: str) -> bool:
    return await _status(client, artisan_id) == status


async def test_busy_keeps_fixes_out_of_geo_and_set_available_restores(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    redis = gw.app[appkeys.REDIS]
    artisan_id, token = await new_artisan(db, gw_settings)
    ws = await connect(gw, token)
    await ws.send_json(fix())
    await eventually(lambda: _in_geo(gw, artisan_id, "PLUMBER"))
    await live.set_busy(redis, artisan_id)
    assert await _status(gw, artisan_id) == "BUSY"
    assert not await _in_geo(gw, artisan_id, "PLUMBER")
    await ws.send_json(fix(48.8570, 2.3522, now_ms() + 1000))
    await eventually(lambda: _lat_is(gw, artisan_id, 48.8570))
    assert await _status(gw, artisan_id) == "BUSY"
    assert not await _in_geo(gw, artisan_id, "PLUMBER")
    assert await live.set_available(redis, artisan_id) == "ONLINE"
    assert await _in_geo(gw, artisan_id, "PLUMBER")
    await ws.close()


async def _lat_is(client: TestClient[Any, Any], artisan_id: uuid.UUID, lat: float) -> bool:
    state = await live.read_live(client.app[appkeys.REDIS], artisan_id)
    return state is not None and state["lat"] == lat


async def test_update_profile_rejected_forces_offline(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    redis = gw.app[appkeys.REDIS]
    artisan_id, token = await new_artisan(db, gw_settings)
    ws = await connect(gw, token)
    await ws.send_json(fix())
    await eventually(lambda: _in_geo(gw, artisan_id, "PLUMBER"))
    await live.update_profile(redis, artisan_id, rating=3.25, specialty="GLAZIER")
    assert await _in_geo(gw, artisan_id, "GLAZIER")
    assert not await _in_geo(gw, artisan_id, "PLUMBER")
    assert float(await redis.hget(redis_keys.live_artisan(str(artisan_id)), "rating")) == 3.25
    await live.update_profile(redis, artisan_id, verified=False)
    assert await _status(gw, artisan_id) == "OFFLINE"
    assert not await _in_geo(gw, artisan_id, "GLAZIER")
    await ws.close()


async def test_write_behind_lands_positions_and_status_in_postgres(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    artisan_id, token = await new_artisan(db, gw_settings)
    ws = await connect(gw, token)
    ts = now_ms()
    await ws.send_json(fix(48.8600, 2.3400, ts))

    async def row() -> asyncpg.Record | None:
        r = await db.fetchrow(
            """SELECT ST_Y(location::geometry) AS lat, ST_X(location::geometry) AS lon,
                      location_updated_at, current_status FROM artisans WHERE user_id = $1""",
            artisan_id,
        )
        return r if r is not None and r["lat"] is not None else None

    r = await eventually(row)
    assert abs(r["lat"] - 48.86) < 1e-9 and abs(r["lon"] - 2.34) < 1e-9
    assert int(r["location_updated_at"].timestamp() * 1000) == ts
    assert r["current_status"] == "ONLINE"
    await ws.send_json({"type": "presence", "status": "OFFLINE"})
    await recv_type(ws, "presence")

    async def offline() -> bool:
        status: str | None = await db.fetchval(
            "SELECT current_status FROM artisans WHERE user_id = $1", artisan_id
        )
        return status == "OFFLINE"

    await eventually(offline)
    await ws.close()


async def test_leases_ended_together_are_swept_in_one_call_per_limit(redis: Redis) -> None:
    """A mass disconnect ends thousands of leases at once: one script call per `limit`
    leases takes the ONLINE ones OFFLINE (out of the GEO set), leaves a BUSY one BUSY and
    a lease not yet due alone."""
    ids = [str(uuid.uuid4()) for _ in range(1100)]
    for aid in ids:
        await live.connect_artisan(
            redis, aid, specialty="PLUMBER", level="STANDARD", rating=4.0, verified=True
        )

    async def untracked(entries: list[TrackedFix]) -> None:
        pass

    batcher = LocationBatcher(redis, chunk=2000, on_tracked=untracked)
    ts = now_ms()
    await batcher.flush({aid: (48.85, 2.35, ts, None) for aid in ids})
    due, later = ids[:1050], ids[1050:]
    busy = due[:10]
    for aid in busy:
        await live.set_busy(redis, aid)
    await redis.zadd(redis_keys.PRESENCE_LEASES, dict.fromkeys(due, ts - 1000))
    await redis.zadd(redis_keys.PRESENCE_LEASES, dict.fromkeys(later, ts + 60_000))
    calls: list[tuple[int, int]] = []
    while True:
        ended, offline = await live.expire_leases(redis, limit=500)
        calls.append((ended, offline))
        if ended < 500:
            break
    assert [ended for ended, _ in calls] == [500, 500, 50]
    assert sum(offline for _, offline in calls) == 1040  # all but the BUSY ones
    assert sorted(await redis.zrange(redis_keys.PRESENCE_LEASES, 0, -1)) == sorted(later)
    statuses = [await live.read_live(redis, aid) for aid in ids]
    got = Counter(s["current_status"] for s in statuses if s is not None)
    assert got == {"OFFLINE": 1040, "BUSY": 10, "ONLINE": 50}
    geo = await redis.zrange(redis_keys.geo_online("PLUMBER"), 0, -1)
    assert sorted(geo) == sorted(later)


async def test_after_redis_lost_its_data_connected_artisans_are_rehydrated_in_chunks(
    gw: TestClient[Any, Any],
    db: asyncpg.Connection,
    gw_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    artisans = [await new_artisan(db, gw_settings) for _ in range(5)]
    sockets = [await connect(gw, token) for _aid, token in artisans]
    redis = gw.app[appkeys.REDIS]
    await redis.flushdb()  # as a Redis restarted without its data
    monkeypatch.setattr(presence, "REHYDRATE_CHUNK", 2)  # five artisans: three pipelines
    await presence.rehydrate(gw.app[gateway_keys.GATEWAY])
    for aid, _token in artisans:
        row = await db.fetchrow(
            "SELECT specialty, level, status FROM artisans WHERE user_id = $1", aid
        )
        fields = await redis.hmget(
            redis_keys.live_artisan(str(aid)), ["specialty", "level", "verified"]
        )
        assert fields == [
            row["specialty"],
            row["level"],
            "1" if row["status"] == "VERIFIED" else "0",
        ]
    for ws in sockets:
        await ws.close()
