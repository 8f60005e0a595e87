"""`GET /admin/interventions/{id}/timeline` and `GET /admin/kpis`: what the ops console
reads, from the intervention events and offers in PostgreSQL."""

from __future__ import annotations

import uuid

from tests.world import World


async def _assigned_job(world: World) -> tuple[dict[str, object], uuid.UUID, uuid.UUID]:
    """A job whose first offer was declined and whose second was accepted."""
    client = await world.user()
    near = await world.artisan(48.857, 2.352)
    far = await world.artisan(48.87, 2.36)
    job = await world.request(client)
    first = await world.recorder.offer_for(near)
    resp = await world.client.post(f"/offers/{first['offer_id']}/decline", headers=world.auth(near))
    assert resp.status == 204
    second = await world.recorder.offer_for(far)
    resp = await world.accept(far, second["offer_id"])
    assert resp.status == 200, await resp.text()
    return job, near, far


async def test_timeline_lists_creation_offers_outcomes_and_statuses_in_order(
    world: World,
) -> None:
    admin = await world.user("ADMIN")
    job, near, far = await _assigned_job(world)
    resp = await world.client.get(
        f"/admin/interventions/{job['id']}/timeline", headers=world.auth(admin)
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["intervention"]["id"] == job["id"]
    assert body["intervention"]["status"] == "ASSIGNED"
    assert body["intervention"]["artisan_id"] == str(far)
    kinds = [(e["kind"], e.get("artisan_id")) for e in body["entries"]]
    assert kinds == [
        ("created", None),
        ("offer.sent", str(near)),
        ("offer.declined", str(near)),
        ("offer.sent", str(far)),
        ("offer.accepted", str(far)),
        ("status", None),
    ]
    created, sent = body["entries"][0], body["entries"][1]
    assert created["to_status"] == "SEARCHING" and created["actor_role"] == "CLIENT"
    assert sent["distance_km"] < 0.2
    assigned = body["entries"][-1]
    assert (assigned["from_status"], assigned["to_status"]) == ("SEARCHING", "ASSIGNED")
    times = [e["at"] for e in body["entries"]]
    assert times == sorted(times)


async def test_timeline_of_unknown_or_malformed_id_is_404(world: World) -> None:
    admin = await world.user("ADMIN")
    for job_id in (str(uuid.uuid4()), "not-a-uuid"):
        resp = await world.client.get(
            f"/admin/interventions/{job_id}/timeline", headers=world.auth(admin)
        )
        assert resp.status == 404
        assert resp.content_type == "application/problem+json"


async def test_kpis_count_the_window_by_specialty(world: World) -> None:
    admin = await world.user("ADMIN")
    await _assigned_job(world)
    client = await world.user()
    await world.request(client, specialty="GLAZIER")  # nobody to offer it to
    resp = await world.client.get("/admin/kpis?window_s=3600", headers=world.auth(admin))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["window_s"] == 3600
    total = body["total"]
    assert (total["jobs_created"], total["jobs_assigned"]) == (2, 1)
    assert total["acceptance_rate"] == 0.5  # one decline, one accept
    assert total["offers_answered"] == 2
    assert total["time_to_assign_s"]["p50"] is not None
    assert total["time_to_assign_s"]["p50"] >= total["time_to_first_offer_s"]["p50"] >= 0
    plumbers = body["by_specialty"]["PLUMBER"]
    assert (plumbers["jobs_created"], plumbers["jobs_assigned"]) == (1, 1)
    glaziers = body["by_specialty"]["GLAZIER"]
    assert (glaziers["jobs_created"], glaziers["jobs_assigned"]) == (1, 0)
    assert glaziers["acceptance_rate"] is None
    assert body["by_specialty"]["LOCKSMITH"]["jobs_created"] == 0
    assert set(body["by_specialty"]) == {
        "PLUMBER",
        "ELECTRICIAN",
        "LOCKSMITH",
        "HEATING",
        "GLAZIER",
        "APPLIANCE_REPAIR",
    }


async def test_kpis_window_outside_the_bounds_is_422(world: World) -> None:
    admin = await world.user("ADMIN")
    for window in ("0", "59", "604801", "abc", "1.5", ""):
        resp = await world.client.get(f"/admin/kpis?window_s={window}", headers=world.auth(admin))
        assert resp.status == 422, window
        body = await resp.json()
        assert body["errors"][0]["field"] == "window_s"


async def test_ops_routes_are_admin_only(world: World) -> None:
    job, _near, far = await _assigned_job(world)
    client = await world.user()
    for path in (f"/admin/interventions/{job['id']}/timeline", "/admin/kpis"):
        for user in (client, far):
            resp = await world.client.get(path, headers=world.auth(user))
            assert resp.status == 403, path
        resp = await world.client.get(path)
        assert resp.status == 401
