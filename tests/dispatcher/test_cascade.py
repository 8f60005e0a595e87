"""The dispatcher: ranking, the offer cascade, widening, giving up, its timers and metrics."""

from __future__ import annotations

import asyncio
import uuid

from core.appkeys import METRICS
from dispatch import appkeys as dispatch_keys
from tests.world import World, poll_until

# ~1.1 km per 0.01° of latitude around Paris.
NEAR, MID, FAR = (48.8576, 2.3522), (48.8666, 2.3522), (48.8766, 2.3522)


def metric(world: World, name: str, **labels: str) -> float:
    value = world.app[METRICS].registry.get_sample_value(name, labels or None)
    return value or 0.0


async def test_first_offer_goes_to_the_best_ranked_eligible_artisan(world: World) -> None:
    best = await world.artisan(*MID, level="ELITE", rating=5.0)  # 1.1 km, bonus 1.5 km
    nearest = await world.artisan(*NEAR)  # 0.1 km, no bonus
    await world.artisan(*NEAR, specialty="LOCKSMITH")  # wrong specialty
    await world.artisan(*NEAR, verified=False)  # in the index but not VERIFIED in PG
    await world.artisan(48.99, 2.3522)  # 14.8 km: beyond the 10 km radius
    client = await world.user()
    job = await world.request(client, address="3 rue X", description="Leak")
    offer = await world.recorder.offer_for(best)
    assert offer["intervention"] == {
        "id": job["id"],
        "specialty": "PLUMBER",
        "lat": job["lat"],
        "lon": job["lon"],
        "address": "3 rue X",
        "description": "Leak",
        "distance_km": offer["intervention"]["distance_km"],
    }
    assert 0.9 < offer["intervention"]["distance_km"] < 1.2
    assert offer["expires_at"].endswith("Z")
    # batch = 1: nobody else was asked.
    assert world.recorder.of(nearest, "offer") == []
    rows = await world.db.fetch("SELECT artisan_id, status FROM offers")
    assert [tuple(r) for r in rows] == [(best, "PENDING")]
    assert metric(world, "zendo_dispatch_first_offer_seconds_count") == 1
    assert metric(world, "zendo_match_seconds_count") >= 1


async def test_decline_then_timeout_cascade_then_accept(world: World) -> None:
    first = await world.artisan(*NEAR)
    second = await world.artisan(*MID)
    third = await world.artisan(*FAR)
    client = await world.user()
    job = await world.request(client)
    offer1 = await world.recorder.offer_for(first)
    resp = await world.client.post(
        f"/offers/{offer1['offer_id']}/decline", headers=world.auth(first)
    )
    assert resp.status == 204
    # Declined: the next one is asked at once, well before the 1 s timeout.
    offer2 = await world.recorder.offer_for(second, within=0.5)
    # Ignored: after the timeout the third is asked and the second is told.
    offer3 = await world.recorder.offer_for(third, within=3)
    assert world.recorder.of(second, "offer.result") == [
        {"type": "offer.result", "offer_id": offer2["offer_id"], "outcome": "expired"}
    ]
    late = await world.accept(second, offer2["offer_id"])
    assert late.status == 409 and (await late.json())["code"] == "offer_expired"
    resp = await world.accept(third, offer3["offer_id"])
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ASSIGNED" and body["artisan_id"] == str(third)
    assert "start_code" not in body
    statuses = {r["artisan_id"]: r["status"] for r in await world.db.fetch("SELECT * FROM offers")}
    assert statuses == {first: "DECLINED", second: "EXPIRED", third: "ACCEPTED"}
    assert (
        await world.db.fetchval("SELECT current_status FROM artisans WHERE user_id = $1", third)
        == "BUSY"
    )
    client_frames = world.recorder.of(client, "intervention.status")
    assert client_frames[-1]["intervention"]["status"] == "ASSIGNED"
    assert client_frames[-1]["intervention"]["start_code"] == job["start_code"]
    assert world.recorder.of(third, "offer.result")[-1]["outcome"] == "accepted"
    assert metric(world, "zendo_offers_total", outcome="declined") == 1
    assert metric(world, "zendo_offers_total", outcome="expired") == 1
    assert metric(world, "zendo_offers_total", outcome="accepted") == 1
    # Timed once: the late (rejected) accept is not a notification.
    assert metric(world, "zendo_dispatch_accept_notify_seconds_count") == 1


async def test_search_widens_once_then_unfulfilled(world: World) -> None:
    # 15 km away: outside the 10 km radius, inside the widened 20 km.
    outer = await world.artisan(48.9916, 2.3522)
    client = await world.user()
    job = await world.request(client)
    offer = await world.recorder.offer_for(outer)
    assert 14 < offer["intervention"]["distance_km"] < 16
    await world.client.post(f"/offers/{offer['offer_id']}/decline", headers=world.auth(outer))
    # Pushed right after the commit: wait for the frame, not only the row.
    frames = await world.recorder.wait_for(lambda: world.recorder.of(client, "intervention.status"))
    assert frames[-1]["intervention"]["status"] == "UNFULFILLED"
    assert await world.status(job["id"]) == "UNFULFILLED"
    events = await world.db.fetch(
        "SELECT to_status, actor_role FROM intervention_events WHERE intervention_id = $1 ORDER BY id",
        uuid.UUID(job["id"]),
    )
    assert [tuple(e) for e in events] == [("SEARCHING", "CLIENT"), ("UNFULFILLED", "SYSTEM")]


async def test_nobody_at_all_is_unfulfilled_right_away(world: World) -> None:
    client = await world.user()
    job = await world.request(client)
    await world.wait_status(job["id"], "UNFULFILLED", within=1.0)


async def test_metrics_expose_dispatch_series(world: World) -> None:
    artisan = await world.artisan(48.8576, 2.3522)
    client = await world.user()
    await world.request(client)
    offer = await world.recorder.offer_for(artisan)
    await world.accept(artisan, offer["offer_id"])
    text = await (await world.client.get("/metrics")).text()
    assert 'zendo_offers_total{outcome="accepted"} 1.0' in text
    assert "zendo_dispatch_first_offer_seconds_count 1.0" in text
    assert "zendo_match_seconds_count" in text


async def test_unfulfilled_after_one_widening_tells_the_client(world: World) -> None:
    # 15 km: only in the widened (20 km) search. 25 km: beyond even that.
    outer = await world.artisan(48.9916, 2.3522)
    beyond = await world.artisan(49.0816, 2.3522)
    client = await world.user()
    job = await world.request(client)
    offer = await world.recorder.offer_for(outer)
    # Ignored: it expires, and no second widening reaches the artisan 25 km away.
    # The frame is pushed right after the commit that marks the job UNFULFILLED.
    frames = await world.recorder.wait_for(
        lambda: world.recorder.of(client, "intervention.status"), within=4.0
    )
    assert await world.status(job["id"]) == "UNFULFILLED"
    assert world.recorder.of(beyond) == []
    assert [f["intervention"]["status"] for f in frames] == ["UNFULFILLED"]
    assert frames[0]["intervention"]["id"] == job["id"]
    row = await world.db.fetchrow(
        "SELECT search_round, next_check_at FROM interventions WHERE id = $1",
        uuid.UUID(job["id"]),
    )
    assert row["search_round"] == 1 and row["next_check_at"] is None
    offers = await world.db.fetch("SELECT artisan_id, status FROM offers")
    assert [tuple(o) for o in offers] == [(outer, "EXPIRED")]
    assert world.recorder.of(outer, "offer.result") == [
        {"type": "offer.result", "offer_id": offer["offer_id"], "outcome": "expired"}
    ]


async def test_nobody_at_all_tells_the_client_unfulfilled(world: World) -> None:
    client = await world.user()
    job = await world.request(client)
    frames = await world.recorder.wait_for(
        lambda: world.recorder.of(client, "intervention.status"), within=1.0
    )
    assert frames[0]["intervention"]["status"] == "UNFULFILLED"
    assert frames[0]["intervention"]["start_code"] == job["start_code"]


async def test_an_accepted_job_keeps_no_offer_timer(world: World) -> None:
    artisan = await world.artisan(*NEAR)
    client = await world.user()
    job = await world.request(client)
    offer = await world.recorder.offer_for(artisan)
    timers = world.app[dispatch_keys.DISPATCHER]._timers
    assert uuid.UUID(job["id"]) in timers  # armed for the offer's expiry
    assert (await world.accept(artisan, offer["offer_id"])).status == 200
    assert uuid.UUID(job["id"]) not in timers  # no wasted wake-up 20 s later


async def test_a_timer_firing_after_the_accept_steps_nothing(world: World) -> None:
    """With several workers the accept may land on another process, which disarms its own
    timer only: the creating process's timer still fires, and must not lock the job for
    a step that has nothing to do."""
    artisan = await world.artisan(*NEAR)
    client = await world.user()
    job = await world.request(client)
    offer = await world.recorder.offer_for(artisan)
    assert (await world.accept(artisan, offer["offer_id"])).status == 200
    dispatcher = world.app[dispatch_keys.DISPATCHER]
    job_id = uuid.UUID(job["id"])
    stepped: list[uuid.UUID] = []
    step = dispatcher._step

    async def counted(conn, intervention_id, *args):  # type: ignore[no-untyped-def]
        stepped.append(intervention_id)
        return await step(conn, intervention_id, *args)

    dispatcher._step = counted  # type: ignore[method-assign]
    dispatcher.arm(job_id, 0.0)  # the other process's timer, as it fires
    await poll_until(lambda: job_id not in dispatcher._timers)
    await asyncio.gather(*dispatcher._tasks)
    assert stepped == []
    # A job still searching (its offer pending) is stepped when its timer fires.
    await world.artisan(*MID)
    searching = uuid.UUID((await world.request(await world.user()))["id"])
    dispatcher.arm(searching, 0.0)
    await poll_until(lambda: searching in stepped)
