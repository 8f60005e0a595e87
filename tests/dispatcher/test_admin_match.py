"""GET /admin/match, admin powers over interventions, and the database backstops."""

from __future__ import annotations

import uuid

import pytest

from tests.dispatch.conftest import World


async def test_admin_match_returns_the_dispatch_ranking(world: World) -> None:
    admin = await world.user("ADMIN")
    near = await world.artisan(48.8576, 2.3522)
    elite = await world.artisan(48.8666, 2.3522, level="ELITE", rating=5.0)
    await world.artisan(48.8576, 2.3522, specialty="GLAZIER")
    await world.artisan(48.99, 2.3522)  # beyond the radius
    resp = await world.client.get(
        "/admin/match?lat=48.8566&lon=2.3522&specialty=PLUMBER&k=5", headers=world.auth(admin)
    )
    assert resp.status == 200
    body = await resp.json()
    assert [c["artisan_id"] for c in body] == [str(elite), str(near)]
    assert body[1]["distance_km"] == pytest.approx(0.111, abs=0.01)
    assert body[0]["score"] < body[1]["score"]


@pytest.mark.parametrize(
    "query",
    [
        "lon=2.35&specialty=PLUMBER",
        "lat=91&lon=2.35&specialty=PLUMBER",
        "lat=nan&lon=2.35&specialty=PLUMBER",
        "lat=48.85&lon=inf&specialty=PLUMBER",
        "lat=48.85&lon=2.35&specialty=plumber",
        "lat=48.85&lon=2.35",
        "lat=48.85&lon=2.35&specialty=PLUMBER&k=0",
        "lat=48.85&lon=2.35&specialty=PLUMBER&k=101",
        "lat=48.85&lon=2.35&specialty=PLUMBER&k=%C2%B2",
    ],
)
async def test_admin_match_validates_its_parameters(world: World, query: str) -> None:
    admin = await world.user("ADMIN")
    resp = await world.client.get(f"/admin/match?{query}", headers=world.auth(admin))
    assert resp.status == 422
    assert resp.content_type == "application/problem+json"


async def test_admin_match_is_for_admins(world: World) -> None:
    client = await world.user()
    url = "/admin/match?lat=48.85&lon=2.35&specialty=PLUMBER"
    assert (await world.client.get(url, headers=world.auth(client))).status == 403
    assert (await world.client.get(url)).status == 401


async def test_admin_may_cancel_and_read_any_intervention(world: World) -> None:
    admin = await world.user("ADMIN")
    client = await world.user()
    job = await world.request(client)
    resp = await world.client.get("/interventions", headers=world.auth(admin))
    assert [j["id"] for j in await resp.json()] == [job["id"]]
    resp = await world.client.post(f"/interventions/{job['id']}/cancel", headers=world.auth(admin))
    assert resp.status in (200, 409)  # 409 if the empty search already gave up
    assert await world.status(job["id"]) in ("CANCELLED", "UNFULFILLED")


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
