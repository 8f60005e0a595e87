"""ONLINE needs a recent fix: the stale sweep turns ONLINE artisans whose fixes stopped
OFFLINE (socket still open), and their next fix brings them back."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from core import appkeys, redis_keys
from core.settings import Settings
from gateway import live
from gateway.mirror import parse_event
from tests.gateway.conftest import (
    FAST_CONFIG,
    MakeClient,
    connect,
    eventually,
    fix,
    new_artisan,
    now_ms,
    recv_type,
)

STALE_CONFIG = dataclasses.replace(FAST_CONFIG, recent_fix_s=0.6)


async def _state(client: TestClient[Any, Any], artisan_id: uuid.UUID) -> dict[str, Any]:
    redis = client.app[appkeys.REDIS]
    aid = str(artisan_id)
    return {
        "status": await redis.hget(redis_keys.live_artisan(aid), "current_status"),
        "geo": await redis.zscore(redis_keys.geo_online("PLUMBER"), aid) is not None,
        "fresh": await redis.zscore(redis_keys.LIVE_FRESH, aid),
    }


async def _with_status(
    client: TestClient[Any, Any], artisan_id: uuid.UUID, status: str
) -> dict[str, Any] | None:
    state = await _state(client, artisan_id)
    return state if state["status"] == status else None


async def test_artisan_whose_fixes_stop_goes_offline_and_the_next_fix_restores_them(
    make_client: MakeClient, db: asyncpg.Connection, gw_settings: Settings
) -> None:
    gw = await make_client(STALE_CONFIG)
    artisan_id, token = await new_artisan(db, gw_settings)
    ws = await connect(gw, token)
    ts = now_ms()
    await ws.send_json(fix(48.85, 2.35, ts))
    online = await eventually(lambda: _with_status(gw, artisan_id, "ONLINE"))
    assert online["geo"] and online["fresh"] == ts
    state = await eventually(lambda: _with_status(gw, artisan_id, "OFFLINE"), within=3.0)
    assert not state["geo"] and state["fresh"] is None
    redis = gw.app[appkeys.REDIS]
    cell = await redis.hget(redis_keys.live_artisan(str(artisan_id)), "h3")
    assert not await redis.sismember(redis_keys.h3_bucket(cell), str(artisan_id))
    # The mirrors heard about it (a status event with the OFFLINE snapshot).
    events = await redis.xrange(redis_keys.ARTISAN_EVENTS)
    statuses = [r for _i, f in events if f["k"] == "status" for r in parse_event(f["d"])]
    assert (str(artisan_id), "48.85", "2.35", "PLUMBER", "STANDARD", "4.5", "OFFLINE") in statuses
    assert not ws.closed  # the socket stays open

    await ws.send_json(fix(48.85, 2.35, now_ms()))
    state = await eventually(lambda: _with_status(gw, artisan_id, "ONLINE"))
    assert state["geo"] and state["fresh"] is not None
    await ws.close()


async def test_busy_artisans_are_not_swept_and_fresh_ones_stay_online(
    make_client: MakeClient, db: asyncpg.Connection, gw_settings: Settings
) -> None:
    gw = await make_client(STALE_CONFIG)
    busy_id, busy_token = await new_artisan(db, gw_settings)
    active_id, active_token = await new_artisan(db, gw_settings)
    busy_ws = await connect(gw, busy_token)
    active_ws = await connect(gw, active_token)
    await busy_ws.send_json(fix(48.85, 2.35))
    await active_ws.send_json(fix(48.86, 2.35))
    await eventually(lambda: _with_status(gw, busy_id, "ONLINE"))
    await live.set_busy(gw.app[appkeys.REDIS], busy_id)
    # The active artisan keeps sending (every 0.2 s, threshold 0.6 s) for 1.5 s.
    lat = 48.86
    for _ in range(8):
        lat += 0.00001
        await active_ws.send_json(fix(lat, 2.35))
        await asyncio.sleep(0.2)
        assert (await _state(gw, active_id))["status"] == "ONLINE"
    busy = await _state(gw, busy_id)
    assert busy["status"] == "BUSY" and busy["fresh"] is None
    await busy_ws.close()
    await active_ws.close()


async def test_presence_online_needs_a_fix_within_the_threshold(
    make_client: MakeClient, db: asyncpg.Connection, gw_settings: Settings
) -> None:
    gw = await make_client(STALE_CONFIG)
    artisan_id, token = await new_artisan(db, gw_settings)
    ws = await connect(gw, token)
    await ws.send_json(fix(48.85, 2.35))
    await eventually(lambda: _with_status(gw, artisan_id, "ONLINE"))
    await eventually(lambda: _with_status(gw, artisan_id, "OFFLINE"), within=3.0)
    await ws.send_json({"type": "presence", "status": "ONLINE"})
    reply = await recv_type(ws, "presence")
    assert reply["status"] == "OFFLINE"  # no recent fix: not ONLINE on request alone
    await ws.close()


async def test_expire_stale_only_touches_online_artisans_older_than_the_cutoff(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    """The script itself, without the sweeper's timing: a cutoff between two fixes."""
    redis = gw.app[appkeys.REDIS]
    old_id, _ = await new_artisan(db, gw_settings)
    new_id, _ = await new_artisan(db, gw_settings)
    for aid, age_ms in ((old_id, 60_000), (new_id, 1_000)):
        await live.connect_artisan(
            redis, str(aid), specialty="PLUMBER", level="STANDARD", rating=4.5, verified=True
        )
        await redis.hset(
            redis_keys.live_artisan(str(aid)),
            mapping={"lat": 48.85, "lon": 2.35, "ts": now_ms() - age_ms},
        )
        assert await live.set_available(redis, aid) == "ONLINE"
    assert await live.expire_stale(redis, recent_fix_ms=30_000) == 1
    assert await redis.hget(redis_keys.live_artisan(str(old_id)), "current_status") == "OFFLINE"
    assert await redis.hget(redis_keys.live_artisan(str(new_id)), "current_status") == "ONLINE"
    assert await live.expire_stale(redis, recent_fix_ms=30_000) == 0  # idempotent
    assert await redis.zcard(redis_keys.LIVE_FRESH) == 1
