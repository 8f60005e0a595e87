"""Accepting, declining and revoking offers: batch, one winner, ownership, backstops."""

from __future__ import annotations

import asyncio
import uuid

from dispatch import appkeys as dispatch_keys
from tests.factories import create_user, token_for
from tests.world import World

# ~1.1 km per 0.01° of latitude around Paris.
NEAR, MID, FAR = (48.8576, 2.3522), (48.8666, 2.3522), (48.8766, 2.3522)


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


async def test_an_artisan_holding_a_job_cannot_accept_another(world: World) -> None:
    artisan = await world.artisan(48.8576, 2.3522)
    client = await world.user()
    await world.request(client)
    offer = await world.recorder.offer_for(artisan)
    # A job assigned to them behind the dispatcher's back (e.g. by hand in the database).
    await world.db.execute(
        """INSERT INTO interventions (client_id, artisan_id, specialty, location, status, start_code)
           VALUES ($1, $2, 'PLUMBER', ST_MakePoint(2.35, 48.85)::geography, 'EN_ROUTE', '1234')""",
        client,
        artisan,
    )
    resp = await world.accept(artisan, offer["offer_id"])
    assert resp.status == 409 and (await resp.json())["code"] == "artisan_busy"
    row = await world.db.fetchrow(
        "SELECT status FROM offers WHERE id = $1", uuid.UUID(offer["offer_id"])
    )
    assert row["status"] == "PENDING"  # the failed accept left no trace


async def _admin(world: World) -> uuid.UUID:
    uid = await create_user(world.db, role="ADMIN")
    world.tokens[uid] = token_for(world.settings, uid, "ADMIN")
    return uid


async def _offer_status(world: World, offer_id: str) -> str:
    return str(
        await world.db.fetchval("SELECT status FROM offers WHERE id = $1", uuid.UUID(offer_id))
    )


async def test_accept_after_the_artisan_was_rejected_is_refused(world: World) -> None:
    artisan = await world.artisan(*NEAR)
    client = await world.user()
    job = await world.request(client)
    offer = await world.recorder.offer_for(artisan)
    # Rejected behind the dispatcher's back (no revocation): the accept itself must check.
    await world.db.execute("UPDATE artisans SET status = 'REJECTED' WHERE user_id = $1", artisan)
    resp = await world.accept(artisan, offer["offer_id"])
    assert resp.status == 409
    assert (await resp.json())["code"] == "artisan_not_verified"
    assert await world.status(job["id"]) == "SEARCHING"
    assert await _offer_status(world, offer["offer_id"]) == "PENDING"  # rolled back
    row = await world.db.fetchrow("SELECT current_status FROM artisans WHERE user_id = $1", artisan)
    assert row["current_status"] != "BUSY"


async def test_admin_reject_revokes_pending_offers_and_the_job_cascades(world: World) -> None:
    rejected = await world.artisan(*NEAR)
    nextbest = await world.artisan(*MID)
    admin = await _admin(world)
    client = await world.user()
    job = await world.request(client)
    offer = await world.recorder.offer_for(rejected)
    resp = await world.client.post(
        f"/admin/artisans/{rejected}/reject",
        json={"reason": "Documents forged"},
        headers=world.auth(admin),
    )
    assert resp.status == 200, await resp.text()
    assert world.recorder.of(rejected, "offer.result") == [
        {"type": "offer.result", "offer_id": offer["offer_id"], "outcome": "revoked"}
    ]
    assert await _offer_status(world, offer["offer_id"]) == "REVOKED"
    # The job moves on at once (well before the 1 s offer timeout).
    second = await world.recorder.offer_for(nextbest, within=0.5)
    assert second["intervention"]["id"] == job["id"]
    late = await world.accept(rejected, offer["offer_id"])
    assert late.status == 409
    assert (await world.accept(nextbest, second["offer_id"])).status == 200


async def test_revoke_pending_for_artisan_without_offers_is_a_no_op(world: World) -> None:
    from dispatch.offers.service import revoke_pending_for_artisan

    artisan = await world.artisan(*NEAR)
    assert await revoke_pending_for_artisan(world.app, artisan) == 0
    assert world.recorder.of(artisan) == []
