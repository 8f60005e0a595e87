"""The dispatcher and acceptance: ranking, cascade, widening, batch, atomic accept."""

from __future__ import annotations

import asyncio
import uuid

from core.appkeys import METRICS
from dispatch import appkeys as dispatch_keys
from tests.dispatch.conftest import World

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


async def test_batch_offers_first_accept_wins_others_get_taken(world: World) -> None:
    world.app[dispatch_keys.DISPATCHER]._settings = world.settings.replace(offer_batch=3)
    artisans = [await world.artisan(48.857 + i * 0.001, 2.3522) for i in range(4)]
    client = await world.user()
    job = await world.request(client)
    offers = [await world.recorder.offer_for(a) for a in artisans[:3]]
    assert world.recorder.of(artisans[3], "offer") == []
    resp = await world.accept(artisans[1], offers[1]["offer_id"])
    assert resp.status == 200
    for loser, offer in ((artisans[0], offers[0]), (artisans[2], offers[2])):
        assert world.recorder.of(loser, "offer.result") == [
            {"type": "offer.result", "offer_id": offer["offer_id"], "outcome": "taken"}
        ]
        resp = await world.accept(loser, offer["offer_id"])
        assert resp.status == 409 and (await resp.json())["code"] == "offer_taken"
    assert await world.status(job["id"]) == "ASSIGNED"


async def test_twenty_concurrent_accepts_have_exactly_one_winner(world: World) -> None:
    world.app[dispatch_keys.DISPATCHER]._settings = world.settings.replace(
        offer_batch=20, offer_timeout_s=5.0
    )
    artisans = [await world.artisan(48.857 + i * 0.0005, 2.3522) for i in range(20)]
    client = await world.user()
    job = await world.request(client)
    offers = [await world.recorder.offer_for(a) for a in artisans]
    responses = await asyncio.gather(
        *(world.accept(a, o["offer_id"]) for a, o in zip(artisans, offers, strict=True))
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] + [409] * 19
    codes = {(await r.json())["code"] for r in responses if r.status == 409}
    assert codes == {"offer_taken"}
    winner = next(a for a, r in zip(artisans, responses, strict=True) if r.status == 200)
    row = await world.db.fetchrow("SELECT status, artisan_id FROM interventions")
    assert tuple(row) == ("ASSIGNED", winner)
    assert await world.db.fetchval("SELECT count(*) FROM offers WHERE status = 'ACCEPTED'") == 1
    assert await world.db.fetchval("SELECT count(*) FROM offers WHERE status = 'PENDING'") == 0
    del job


async def test_two_jobs_racing_for_one_artisan(world: World) -> None:
    artisan = await world.artisan(*NEAR)
    c1, c2 = await world.user(), await world.user()
    jobs = await asyncio.gather(world.request(c1), world.request(c2))
    offer = await world.recorder.offer_for(artisan)
    # One pending offer per artisan: the other job is not offered to them meanwhile.
    await asyncio.sleep(0.2)
    assert len(world.recorder.of(artisan, "offer")) == 1
    assert await world.db.fetchval("SELECT count(*) FROM offers") == 1
    assert (await world.accept(artisan, offer["offer_id"])).status == 200
    other = next(j for j in jobs if j["id"] != offer["intervention"]["id"])
    # The artisan is BUSY now; the other job runs out of candidates.
    await world.wait_status(other["id"], "UNFULFILLED", within=5)
    active = await world.db.fetchval(
        "SELECT count(*) FROM interventions WHERE artisan_id = $1", artisan
    )
    assert active == 1


async def test_accept_and_decline_guard_ownership_and_state(world: World) -> None:
    artisan = await world.artisan(*NEAR)
    stranger = await world.artisan(*FAR, online=False)
    client = await world.user()
    await world.request(client)
    offer = await world.recorder.offer_for(artisan)
    oid = offer["offer_id"]
    assert (await world.accept(stranger, oid)).status == 404
    resp = await world.client.post(f"/offers/{oid}/decline", headers=world.auth(stranger))
    assert resp.status == 404
    assert (await world.accept(artisan, str(uuid.uuid4()))).status == 404
    assert (await world.accept(artisan, "nope")).status == 404
    resp = await world.client.post(f"/offers/{oid}/accept", headers=world.auth(client))
    assert resp.status == 403
    assert (await world.accept(artisan, oid)).status == 200
    # A repeated accept answers the same job; declining it now is a conflict.
    again = await world.accept(artisan, oid)
    assert again.status == 200 and (await again.json())["artisan_id"] == str(artisan)
    resp = await world.client.post(f"/offers/{oid}/decline", headers=world.auth(artisan))
    assert resp.status == 409


async def test_cancel_revokes_pending_offers(world: World) -> None:
    artisan = await world.artisan(*NEAR)
    client = await world.user()
    job = await world.request(client)
    offer = await world.recorder.offer_for(artisan)
    resp = await world.client.post(f"/interventions/{job['id']}/cancel", headers=world.auth(client))
    assert resp.status == 200 and (await resp.json())["status"] == "CANCELLED"
    assert world.recorder.of(artisan, "offer.result") == [
        {"type": "offer.result", "offer_id": offer["offer_id"], "outcome": "revoked"}
    ]
    resp = await world.accept(artisan, offer["offer_id"])
    assert resp.status == 409 and (await resp.json())["code"] == "offer_taken"
