"""Admin reads of personal data are audited (issue 18): an artisan's live position, a
ranking of artisans near a point, other people's interventions. Refused or invalid
reads leave no row (nothing was read)."""

from __future__ import annotations

import json
from typing import Any

from tests.factories import insert_intervention
from tests.world import World


async def _audit(world: World) -> list[dict[str, Any]]:
    rows = await world.db.fetch(
        "SELECT admin_id, action, target_id, data FROM admin_audit ORDER BY id"
    )
    # The test connection has no JSON codec: data comes back as text.
    return [{**dict(r), "data": json.loads(r["data"])} for r in rows]


async def test_match_and_live_reads_are_audited(world: World) -> None:
    admin = await world.user("ADMIN")
    near = await world.artisan(48.8576, 2.3522)
    resp = await world.client.get(
        "/admin/match?lat=48.8566&lon=2.3522&specialty=PLUMBER&k=5", headers=world.auth(admin)
    )
    assert resp.status == 200
    resp = await world.client.get(f"/admin/artisans/{near}/live", headers=world.auth(admin))
    assert resp.status in (200, 404)  # audited whether or not a position is known
    rows = await _audit(world)
    assert [r["action"] for r in rows] == ["match.view", "artisan.live.view"]
    assert all(r["admin_id"] == admin for r in rows)
    assert rows[0]["data"]["returned"] == [str(near)]
    assert rows[0]["data"]["specialty"] == "PLUMBER"
    assert rows[1]["target_id"] == near
    assert rows[1]["data"] == {"found": resp.status == 200}


async def test_refused_or_invalid_admin_reads_leave_no_row(world: World) -> None:
    admin, client = await world.user("ADMIN"), await world.user()
    artisan = await world.artisan(48.8576, 2.3522)
    for path, who, status in (
        ("/admin/match?lat=48.85&lon=2.35&specialty=PLUMBER", client, 403),
        ("/admin/match?lat=91&lon=2.35&specialty=PLUMBER", admin, 422),
        (f"/admin/artisans/{artisan}/live", client, 403),
        ("/admin/artisans/not-a-uuid/live", admin, 404),
    ):
        resp = await world.client.get(path, headers=world.auth(who))
        assert resp.status == status, path
    assert await _audit(world) == []


async def test_an_admins_views_of_interventions_are_audited_not_the_owners(
    world: World,
) -> None:
    admin, client = await world.user("ADMIN"), await world.user()
    job = await insert_intervention(world.db, client_id=client, artisan_id=None, status="SEARCHING")
    for who in (client, admin):
        assert (
            await world.client.get(f"/interventions/{job}", headers=world.auth(who))
        ).status == 200
        assert (await world.client.get("/interventions", headers=world.auth(who))).status == 200
    rows = await _audit(world)
    assert [(r["action"], r["target_id"]) for r in rows] == [
        ("intervention.view", job),
        ("interventions.list", None),
    ]
    assert rows[1]["data"] == {"returned": [str(job)]}
    # an admin asking for an unknown one reads nothing and leaves no row
    resp = await world.client.get(
        "/interventions/00000000-0000-0000-0000-000000000000", headers=world.auth(admin)
    )
    assert resp.status == 404 and len(await _audit(world)) == 2
