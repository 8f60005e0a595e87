"""GET /admin/match: the dispatch ranking, for admins only."""

from __future__ import annotations

import pytest

from tests.world import World


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
