"""What each policy changes in the live dispatcher (frames recorded, real PostgreSQL
and Redis): the staggered widening, the fair ranking, the batched tick, the metrics."""

from __future__ import annotations

import uuid

from core.appkeys import METRICS
from dispatch import appkeys as dispatch_keys
from tests.world import World


def use(world: World, policy: str, **changes: object) -> None:
    world.app[dispatch_keys.DISPATCHER]._settings = world.settings.replace(
        dispatch_policy=policy, **changes
    )


async def test_staggered_widens_step_by_step_live(world: World) -> None:
    use(world, "staggered")
    # The radius is 10 km: rounds reach 10, 15 and 20 km. Only 18 km has somebody.
    far = await world.artisan(48.8566 + 18 / 111.2, 2.3522)
    client = await world.user()
    job = await world.request(client)
    offer = await world.recorder.offer_for(far)
    assert 17 < offer["intervention"]["distance_km"] < 19
    round_ = await world.db.fetchval(
        "SELECT search_round FROM interventions WHERE id = $1", uuid.UUID(job["id"])
    )
    assert round_ == 2


async def test_fair_offers_the_nearer_standard_artisan_before_the_elite(world: World) -> None:
    elite = await world.artisan(48.8666, 2.3522, level="ELITE", rating=5.0)  # 1.1 km
    near = await world.artisan(48.8576, 2.3522)  # 0.1 km
    client = await world.user()
    use(world, "sequential")
    await world.request(client)
    await world.recorder.offer_for(elite)  # sequential: level and rating win
    assert world.recorder.of(near, "offer") == []
    use(world, "fair")
    other = await world.user()
    await world.request(other)
    await world.recorder.offer_for(near)  # fair: merit capped, the nearer one first


async def test_batched_offers_on_its_tick_and_counts_by_policy(world: World) -> None:
    use(world, "batched")
    dispatcher = world.app[dispatch_keys.DISPATCHER]
    a = await world.artisan(48.8576, 2.3522)
    b = await world.artisan(48.8666, 2.3522)
    client = await world.user()
    job1 = await world.request(client)
    job2 = await world.request(client, lat=48.8676, lon=2.3522)
    rows = await world.db.fetch("SELECT artisan_id FROM offers")
    assert rows == []  # nothing at creation: the tick decides
    assert await dispatcher.batch_once() == 2
    offers = {
        r["intervention_id"]: r["artisan_id"]
        for r in await world.db.fetch("SELECT intervention_id, artisan_id FROM offers")
    }
    assert offers == {uuid.UUID(job1["id"]): a, uuid.UUID(job2["id"]): b}
    registry = world.app[METRICS].registry
    assert registry.get_sample_value("zendo_dispatch_policy_info", {"policy": "sequential"}) == 1


async def test_best_accept_holds_then_awards_the_best_and_refuses_late_accepts(
    world: World,
) -> None:
    use(world, "best_accept")
    near = await world.artisan(48.8576, 2.3522)
    mid = await world.artisan(48.8621, 2.3522)
    far = await world.artisan(48.8666, 2.3522)
    client = await world.user()
    job = await world.request(client)
    offers = {a: await world.recorder.offer_for(a) for a in (near, mid, far)}
    # The farthest answers first: held, not assigned.
    resp = await world.accept(far, offers[far]["offer_id"])
    assert resp.status == 200 and (await resp.json())["status"] == "SEARCHING"
    again = await world.accept(far, offers[far]["offer_id"])  # a retry: the same answer
    assert again.status == 200 and (await again.json())["status"] == "SEARCHING"
    resp = await world.accept(mid, offers[mid]["offer_id"])
    assert resp.status == 200
    await world.wait_status(job["id"], "ASSIGNED", within=5.0)
    row = await world.db.fetchrow(
        "SELECT artisan_id FROM interventions WHERE id = $1", uuid.UUID(job["id"])
    )
    assert row["artisan_id"] == mid  # the better score of the two who accepted
    assert world.recorder.of(far, "offer.result")[-1]["outcome"] == "taken"
    # The nearest never answered: its 1 s offer expired before the 2 s window closed.
    assert world.recorder.of(near, "offer.result")[-1]["outcome"] == "expired"
    late = await world.accept(near, offers[near]["offer_id"])
    assert late.status == 409 and (await late.json())["code"] == "offer_expired"
    statuses = {r["artisan_id"]: r["status"] for r in await world.db.fetch("SELECT * FROM offers")}
    assert statuses == {near: "EXPIRED", mid: "ACCEPTED", far: "TAKEN"}
