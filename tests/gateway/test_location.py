"""The location pipeline: every rejection reason, the rate limit, and the live state."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from core import appkeys, redis_keys
from core.appkeys import METRICS
from core.settings import Settings
from gateway.location import H3_RESOLUTION
from gateway.mirror import parse_event
from tests.factories import bearer
from tests.gateway.conftest import (
    MakeClient,
    connect,
    eventually,
    fix,
    new_artisan,
    new_user,
    now_ms,
    recv_type,
)


def _metric(client: TestClient[Any, Any], name: str, **labels: str) -> float:
    value = client.app[METRICS].registry.get_sample_value(name, labels or None)
    return value or 0.0


async def test_every_rejection_reason_is_answered_and_counted(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    _id, token = await new_artisan(db, gw_settings)
    ws = await connect(gw, token)
    t0 = now_ms()
    await ws.send_json(fix(48.8566, 2.3522, t0))
    cases = [
        (fix(91.0, 2.35, t0 + 1000), "out_of_range"),
        (fix(48.85, -181.0, t0 + 1000), "out_of_range"),
        (f'{{"type":"location","lat":1e999,"lon":2.3,"ts":{t0 + 1000}}}', "out_of_range"),
        (fix(48.8566, 2.3522, t0 + 6 * 60 * 1000), "clock_skew"),
        (fix(48.8566, 2.3522, t0 - 6 * 60 * 1000), "clock_skew"),
        (fix(48.8566, 2.3522, t0 - 1000), "out_of_order"),
        # ~11 km in one second
        (fix(48.9566, 2.3522, t0 + 1000), "too_fast"),
    ]
    for frame, reason in cases:
        if isinstance(frame, str):
            await ws.send_str(frame)
        else:
            await ws.send_json(frame)
        assert (await recv_type(ws, "error"))["code"] == reason
    # a plausible next fix (≈ 55 m in 2 s) is still accepted
    await ws.send_json(fix(48.8571, 2.3522, t0 + 2000))
    await ws.send_json({"type": "bogus"})  # marker: everything before it was processed
    assert (await recv_type(ws, "error"))["code"] == "unknown_type"
    # counted once per flush, so at most a flush linger later

    async def both_counted() -> bool:
        return _metric(gw, "zendo_pings_accepted_total") == 2

    await eventually(both_counted)
    for reason, count in (
        ("out_of_range", 3),
        ("clock_skew", 2),
        ("out_of_order", 1),
        ("too_fast", 1),
    ):
        assert _metric(gw, "zendo_pings_rejected_total", reason=reason) == count
    await ws.close()


async def test_rate_limit_drops_and_counts_excess(
    make_client: MakeClient, db: asyncpg.Connection, gw_settings: Settings
) -> None:
    client = await make_client(ping_rate_per_s=2.0)
    _id, token = await new_artisan(db, gw_settings)
    ws = await connect(client, token)
    t0 = now_ms()
    for i in range(10):
        await ws.send_json(fix(48.8566, 2.3522, t0 + i))
    await ws.send_json({"type": "bogus"})  # a marker: every fix before it was processed
    assert (await recv_type(ws, "error"))["code"] == "unknown_type"
    assert _metric(client, "zendo_pings_accepted_total") == 2
    assert _metric(client, "zendo_pings_rejected_total", reason="rate_limited") == 8
    await ws.close()


async def test_accepted_fix_reaches_live_state_geo_and_h3(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    import h3

    artisan_id, token = await new_artisan(db, gw_settings, specialty="LOCKSMITH", level="ELITE")
    _admin, admin_token = await new_user(db, gw_settings, role="ADMIN")
    ws = await connect(gw, token)
    ts = now_ms()
    await ws.send_json(fix(48.8600, 2.3400, ts, heading=90.0))

    async def live() -> dict[str, Any] | None:
        resp = await gw.get(f"/admin/artisans/{artisan_id}/live", headers=bearer(admin_token))
        return await resp.json() if resp.status == 200 else None

    state = await eventually(live)
    assert state == {
        "lat": 48.86,
        "lon": 2.34,
        "ts": ts,
        "h3": h3.latlng_to_cell(48.86, 2.34, H3_RESOLUTION),
        "current_status": "ONLINE",
    }
    redis = gw.app[appkeys.REDIS]
    pos = await redis.geopos(redis_keys.geo_online("LOCKSMITH"), str(artisan_id))
    assert pos[0] is not None and abs(pos[0][1] - 48.86) < 1e-4
    assert await redis.sismember(redis_keys.h3_bucket(state["h3"]), str(artisan_id))
    stored = await redis.hgetall(redis_keys.live_artisan(str(artisan_id)))
    assert stored["level"] == "ELITE" and stored["specialty"] == "LOCKSMITH"
    assert float(stored["rating"]) == 4.5
    events = await redis.xrange(redis_keys.ARTISAN_EVENTS)
    rows = [row for _i, f in events if f["k"] == "fix" for row in parse_event(f["d"])]
    assert (str(artisan_id), "48.86", "2.34", "LOCKSMITH", "ELITE", "4.5", "ONLINE") in rows
    await ws.close()


async def test_moving_between_cells_moves_the_h3_bucket(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    artisan_id, token = await new_artisan(db, gw_settings)
    ws = await connect(gw, token)
    redis = gw.app[appkeys.REDIS]
    ts = now_ms()
    await ws.send_json(fix(48.8600, 2.3400, ts))
    key = redis_keys.live_artisan(str(artisan_id))
    first = await eventually(lambda: redis.hget(key, "h3"))
    await ws.send_json(fix(48.8700, 2.3400, ts + 30_000))
    second = await eventually(lambda: _changed(redis.hget(key, "h3"), first))
    assert not await redis.sismember(redis_keys.h3_bucket(first), str(artisan_id))
    assert await redis.sismember(redis_keys.h3_bucket(second), str(artisan_id))
    await ws.close()


async def _changed(value_coro: Any, old: str) -> str | None:
    value = await value_coro
    return value if value != old else None


async def test_live_endpoint_404_and_admin_only(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    _admin, admin_token = await new_user(db, gw_settings, role="ADMIN")
    artisan_id, artisan_token = await new_artisan(db, gw_settings)
    resp = await gw.get(f"/admin/artisans/{artisan_id}/live", headers=bearer(admin_token))
    assert resp.status == 404
    resp = await gw.get("/admin/artisans/not-a-uuid/live", headers=bearer(admin_token))
    assert resp.status == 404
    resp = await gw.get(f"/admin/artisans/{artisan_id}/live", headers=bearer(artisan_token))
    assert resp.status == 403
    resp = await gw.get(f"/admin/artisans/{artisan_id}/live")
    assert resp.status == 401
