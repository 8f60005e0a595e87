"""Edges between dispatch and its neighbours: admin reject, withdrawal, giving up."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from core import appkeys, redis_keys
from dispatch import appkeys as dispatch_keys
from gateway import live
from tests.dispatch.conftest import World, poll_until
from tests.factories import create_user, token_for

NEAR, MID = (48.8576, 2.3522), (48.8666, 2.3522)


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


class PaymentCalls:
    """Wraps the real payments service's hooks and records the order of the calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, payments: Any) -> None:
        self.calls: list[tuple[str, uuid.UUID]] = []
        for name in ("on_assigned", "on_cancelled", "on_completed"):
            monkeypatch.setattr(payments, name, self._recorder(name, getattr(payments, name)))

    def _recorder(self, name: str, real: Any) -> Any:
        async def record(intervention_id: uuid.UUID) -> None:
            self.calls.append((name, intervention_id))
            await real(intervention_id)

        return record


async def test_artisan_giving_the_job_back_releases_payment_tracking_and_live_state(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    payments = PaymentCalls(monkeypatch, world.app[dispatch_keys.PAYMENTS])
    redis = world.app[appkeys.REDIS]
    first = await world.artisan(*NEAR)
    second = await world.artisan(*MID)
    client = await world.user()
    job = await world.request(client)
    job_id = uuid.UUID(job["id"])
    offer = await world.recorder.offer_for(first)
    # Live state as the gateway keeps it for a connected artisan with a fresh fix.
    await live.connect_artisan(
        redis, str(first), specialty="PLUMBER", level="STANDARD", rating=4.0, verified=True
    )
    await redis.hset(
        redis_keys.live_artisan(str(first)),
        mapping={"lat": NEAR[0], "lon": NEAR[1], "ts": live.now_ms()},
    )
    assert (await world.accept(first, offer["offer_id"])).status == 200
    tracking_key = redis_keys.tracking(str(first))
    live_key = redis_keys.live_artisan(str(first))
    await poll_until(lambda: redis.exists(tracking_key))
    assert await redis.hget(live_key, "current_status") == "BUSY"

    resp = await world.client.post(f"/interventions/{job['id']}/cancel", headers=world.auth(first))
    assert resp.status == 200 and (await resp.json())["status"] == "SEARCHING"
    assert not await redis.exists(tracking_key)  # the client stops seeing them
    assert await redis.hget(live_key, "current_status") == "ONLINE"  # set_available
    assert (
        await world.db.fetchval("SELECT current_status FROM artisans WHERE user_id = $1", first)
        == "ONLINE"
    )
    await poll_until(lambda: ("on_cancelled", job_id) in payments.calls)

    # Reassigned: on_assigned comes again, after the on_cancelled.
    offer2 = await world.recorder.offer_for(second)
    assert (await world.accept(second, offer2["offer_id"])).status == 200
    await poll_until(lambda: payments.calls.count(("on_assigned", job_id)) == 2)
    assert payments.calls == [
        ("on_assigned", job_id),
        ("on_cancelled", job_id),
        ("on_assigned", job_id),
    ]
    assert len(world.recorder.of(first, "offer")) == 1  # never asked again


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
