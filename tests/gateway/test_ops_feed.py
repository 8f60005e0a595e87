"""The ops feed on /ws: ADMIN only, a snapshot then batched events, from any process."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from typing import Any, cast

import aiohttp
import asyncpg
from aiohttp.test_utils import TestClient

from core import appkeys, redis_keys
from core.settings import Settings
from gateway.appkeys import OPS_HUB
from tests.factories import bearer
from tests.gateway.conftest import (
    MakeClient,
    connect,
    eventually,
    fix,
    new_artisan,
    new_user,
    recv_type,
)

PARIS = (48.8566, 2.3522)


async def _online(client: TestClient[Any, Any], artisan_id: uuid.UUID) -> bool:
    key = redis_keys.live_artisan(str(artisan_id))
    status = await client.app[appkeys.REDIS].hget(key, "current_status")
    return cast("str | None", status) == "ONLINE"  # decoded replies


_seen: dict[int, list[dict[str, Any]]] = {}


async def _events(
    ws: aiohttp.ClientWebSocketResponse, kind: str, within: float = 3.0, **match: Any
) -> dict[str, Any]:
    """The first ops event of that kind (and matching fields) not yet returned; the
    others received meanwhile are kept for later calls (one tick's events share a frame,
    in no promised order)."""
    pending = _seen.setdefault(id(ws), [])
    deadline = time.monotonic() + within
    while True:
        for i, event in enumerate(pending):
            if event["kind"] == kind and all(event.get(k) == v for k, v in match.items()):
                return pending.pop(i)
        remaining = deadline - time.monotonic()
        frame = await recv_type(ws, "ops.event", within=max(0.01, remaining))
        pending.extend(frame["events"])


async def _subscribe(gw: TestClient[Any, Any], token: str) -> tuple[Any, dict[str, Any]]:
    ws = await connect(gw, token)
    await ws.send_json({"type": "ops.subscribe"})
    return ws, await recv_type(ws, "ops.snapshot")


async def test_non_admins_get_an_error_frame_and_no_feed(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    _client, client_token = await new_user(db, gw_settings)
    _artisan, artisan_token = await new_artisan(db, gw_settings)
    for token in (client_token, artisan_token):
        ws = await connect(gw, token)
        await ws.send_json({"type": "ops.subscribe"})
        error = await recv_type(ws, "error")
        assert error["code"] == "forbidden"
        await ws.send_json({"type": "ops.unsubscribe"})  # harmless
        await ws.close()
    assert not gw.app[OPS_HUB].subscribers


async def test_snapshot_then_artisan_and_job_events(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    _admin, admin_token = await new_user(db, gw_settings, role="ADMIN")
    artisan_id, artisan_token = await new_artisan(db, gw_settings, specialty="PLUMBER")
    artisan = await connect(gw, artisan_token)
    await artisan.send_json(fix(*PARIS))
    await eventually(lambda: _online(gw, artisan_id))

    ops, snapshot = await _subscribe(gw, admin_token)
    assert [a["id"] for a in snapshot["artisans"]] == [str(artisan_id)]
    assert snapshot["artisans"][0]["status"] == "ONLINE"
    assert snapshot["artisans"][0]["specialty"] == "PLUMBER"
    assert snapshot["jobs"] == []
    (cell,) = snapshot["cells"]
    assert (cell["online"], cell["demand"]) == (1, 0)
    assert len(cell["boundary"]) == 6

    client_id, client_token = await new_user(db, gw_settings)
    resp = await gw.post(
        "/interventions",
        json={"specialty": "PLUMBER", "lat": PARIS[0] + 0.001, "lon": PARIS[1]},
        headers=bearer(client_token),
    )
    assert resp.status == 201, await resp.text()
    job = await resp.json()
    created = await _events(ops, "job.created")
    assert created["job"]["id"] == job["id"]
    assert created["job"]["status"] == "SEARCHING"
    offer = await recv_type(artisan, "offer")
    sent = await _events(ops, "offer.sent", intervention_id=job["id"])
    assert sent["artisan_id"] == str(artisan_id)
    await artisan.send_json({"type": "offer.accept", "offer_id": offer["offer_id"]})
    accepted = await _events(ops, "offer.accepted", intervention_id=job["id"])
    assert accepted["offer_id"] == offer["offer_id"]
    status = await _events(ops, "job.status", to_status="ASSIGNED")
    assert status["job"]["artisan_id"] == str(artisan_id)
    busy = await _events(ops, "artisan.status")
    assert busy["artisan"]["status"] == "BUSY"

    resp = await gw.post(f"/interventions/{job['id']}/cancel", headers=bearer(client_token))
    assert resp.status == 200, await resp.text()
    cancelled = await _events(ops, "job.status", to_status="CANCELLED")
    assert cancelled["job"]["status"] == "CANCELLED"
    del client_id

    await ops.send_json({"type": "ops.unsubscribe"})
    await artisan.send_json(fix(PARIS[0] + 0.002, PARIS[1]))
    await ops.send_json({"type": "ops.subscribe"})  # a fresh snapshot
    again = await recv_type(ops, "ops.snapshot")
    assert again["jobs"] == []
    assert again["cells"][0]["demand"] == 1


async def test_positions_are_batched_at_most_once_a_second(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    _admin, admin_token = await new_user(db, gw_settings, role="ADMIN")
    artisan_id, artisan_token = await new_artisan(db, gw_settings)
    artisan = await connect(gw, artisan_token)
    await artisan.send_json(fix(*PARIS))
    await eventually(lambda: _online(gw, artisan_id))
    ops, snapshot = await _subscribe(gw, admin_token)
    assert [a["id"] for a in snapshot["artisans"]] == [str(artisan_id)]
    # Positions reach the feed when they move PostgreSQL's copy (25 m, 60 s or a status
    # change: gateway/lua.py): about 5.6 m a fix, 56 m/s at one fix every 0.1 s.
    step, fixes = 0.00005, 30
    for n in range(1, fixes + 1):
        await artisan.send_json(fix(PARIS[0] + n * step, PARIS[1]))
        await asyncio.sleep(0.1)
    moves: list[tuple[int, list[Any]]] = []  # (the frame's server time in ms, batch)
    clock = asyncio.get_running_loop().time
    deadline = clock() + 2.5
    while clock() < deadline:
        try:
            frame = await recv_type(ops, "ops.event", within=deadline - clock())
        except AssertionError:
            break
        for event in frame["events"]:
            if event["kind"] == "artisan.positions":
                moves.append((frame["ts"], event["artisans"]))
    assert len(moves) >= 2, moves  # 3 s of fixes: three or four batches, not thirty
    assert all(len(batch) == 1 and batch[0][0] == str(artisan_id) for _t, batch in moves)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(moves)]
    assert all(gap >= 950 for gap in gaps), gaps
    last_lat = moves[-1][1][0][1]
    assert PARIS[0] + (fixes - 5) * step <= last_lat <= PARIS[0] + fixes * step  # within 25 m


async def test_the_feed_follows_changes_made_on_another_process(
    make_client: MakeClient, db: asyncpg.Connection, gw_settings: Settings
) -> None:
    here = await make_client()
    there = await make_client()
    _admin, admin_token = await new_user(db, gw_settings, role="ADMIN")
    ops, _snapshot = await _subscribe(here, admin_token)
    artisan_id, artisan_token = await new_artisan(db, gw_settings, specialty="HEATING")
    artisan = await connect(there, artisan_token)
    await artisan.send_json(fix(*PARIS))
    online = await _events(ops, "artisan.status")
    assert online["artisan"]["id"] == str(artisan_id)
    _client, client_token = await new_user(db, gw_settings)
    resp = await there.post(
        "/interventions",
        json={"specialty": "HEATING", "lat": PARIS[0], "lon": PARIS[1]},
        headers=bearer(client_token),
    )
    assert resp.status == 201
    job = await resp.json()
    created = await _events(ops, "job.created")
    assert created["job"]["id"] == job["id"]
