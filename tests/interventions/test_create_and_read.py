"""POST/GET /interventions: validation, service area, idempotency, visibility."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tests.world import PARIS, World


async def test_create_returns_a_searching_priced_intervention_with_a_start_code(
    world: World,
) -> None:
    client = await world.user()
    # Someone to offer the job to: with nobody at all, the step that follows the creation
    # gives up at once, and its UNFULFILLED event could land before the read below.
    await world.artisan()
    job = await world.request(client, address="1 rue de Rivoli", description="Pipe burst")
    assert job["status"] == "SEARCHING"
    assert job["client_id"] == str(client)
    assert job["artisan_id"] is None
    assert (job["lat"], job["lon"]) == pytest.approx(PARIS)
    assert job["address"] == "1 rue de Rivoli" and job["description"] == "Pipe burst"
    assert len(job["start_code"]) == 4 and job["start_code"].isdigit()
    assert job["price"] == {"amount": 12000, "currency": "EUR"}
    assert job["created_at"].endswith("Z")
    events = await world.db.fetch(
        "SELECT from_status, to_status, actor_id, actor_role FROM intervention_events"
        " WHERE intervention_id = $1",
        uuid.UUID(job["id"]),
    )
    assert [tuple(e) for e in events] == [(None, "SEARCHING", client, "CLIENT")]


async def test_outside_the_service_area_is_422_out_of_area(world: World) -> None:
    client = await world.user()
    resp = await world.client.post(
        "/interventions",
        json={"specialty": "PLUMBER", "lat": 45.764, "lon": 4.8357},  # Lyon
        headers=world.auth(client),
    )
    assert resp.status == 422
    assert (await resp.json())["code"] == "out_of_area"
    assert await world.db.fetchval("SELECT count(*) FROM interventions") == 0


@pytest.mark.parametrize(
    "body",
    [
        {"specialty": "ASTRONAUT", "lat": 48.85, "lon": 2.35},
        {"specialty": "PLUMBER", "lat": 91, "lon": 2.35},
        {"specialty": "PLUMBER", "lat": 48.85, "lon": -181},
        {"specialty": "PLUMBER", "lat": "48.85", "lon": 2.35},
        {"specialty": "PLUMBER", "lon": 2.35},
        {"specialty": "PLUMBER", "lat": 48.85, "lon": 2.35, "description": "x" * 2001},
        {"specialty": "PLUMBER", "lat": 48.85, "lon": 2.35, "price": 1},
    ],
)
async def test_invalid_bodies_are_422(world: World, body: dict[str, Any]) -> None:
    client = await world.user()
    resp = await world.client.post("/interventions", json=body, headers=world.auth(client))
    assert resp.status == 422
    assert resp.content_type == "application/problem+json"


async def test_malformed_json_is_400_and_roles_are_enforced(world: World) -> None:
    client = await world.user()
    artisan = await world.artisan(online=False)
    resp = await world.client.post(
        "/interventions",
        data=b"{nope",
        headers={**world.auth(client), "Content-Type": "application/json"},
    )
    assert resp.status == 400
    body = {"specialty": "PLUMBER", "lat": 48.85, "lon": 2.35}
    resp = await world.client.post("/interventions", json=body, headers=world.auth(artisan))
    assert resp.status == 403
    resp = await world.client.post("/interventions", json=body)
    assert resp.status == 401


async def test_idempotency_key_returns_the_same_intervention_once(world: World) -> None:
    client = await world.user()
    other = await world.user()
    body = {"specialty": "PLUMBER", "lat": 48.85, "lon": 2.35}
    headers = {**world.auth(client), "Idempotency-Key": "req-42"}
    responses = await asyncio.gather(
        *(world.client.post("/interventions", json=body, headers=headers) for _ in range(8))
    )
    statuses = sorted(r.status for r in responses)
    ids = {(await r.json())["id"] for r in responses}
    assert statuses == [200] * 7 + [201]
    assert len(ids) == 1
    # Same key from another client is another intervention.
    resp = await world.client.post(
        "/interventions", json=body, headers={**world.auth(other), "Idempotency-Key": "req-42"}
    )
    assert resp.status == 201 and (await resp.json())["id"] not in ids
    assert await world.db.fetchval("SELECT count(*) FROM interventions") == 2
    searching = "SELECT count(*) FROM intervention_events WHERE to_status = 'SEARCHING'"
    assert await world.db.fetchval(searching) == 2


async def test_bad_idempotency_key_is_422(world: World) -> None:
    client = await world.user()
    resp = await world.client.post(
        "/interventions",
        json={"specialty": "PLUMBER", "lat": 48.85, "lon": 2.35},
        headers={**world.auth(client), "Idempotency-Key": "x" * 256},
    )
    assert resp.status == 422


async def test_visibility_client_artisan_admin_and_strangers(world: World) -> None:
    client = await world.user()
    stranger = await world.user()
    admin = await world.user("ADMIN")
    other_artisan = await world.artisan(online=False)
    job = await world.request(client)
    url = f"/interventions/{job['id']}"
    assert (await world.client.get(url, headers=world.auth(client))).status == 200
    admin_view = await (await world.client.get(url, headers=world.auth(admin))).json()
    assert admin_view["id"] == job["id"] and "start_code" not in admin_view
    for outsider in (stranger, other_artisan):
        resp = await world.client.get(url, headers=world.auth(outsider))
        assert resp.status == 404
    assert (await world.client.get(url)).status == 401
    assert (
        await world.client.get("/interventions/not-a-uuid", headers=world.auth(client))
    ).status == 404
    missing = f"/interventions/{uuid.uuid4()}"
    assert (await world.client.get(missing, headers=world.auth(client))).status == 404


async def test_list_is_mine_only_and_filters(world: World) -> None:
    a, b = await world.user(), await world.user()
    first = await world.request(a)
    second = await world.request(a, specialty="LOCKSMITH")
    await world.request(b)
    resp = await world.client.get("/interventions", headers=world.auth(a))
    listed = [j["id"] for j in await resp.json()]
    assert listed == [second["id"], first["id"]]
    resp = await world.client.get("/interventions?limit=1", headers=world.auth(a))
    assert [j["id"] for j in await resp.json()] == [second["id"]]
    for bad in ("limit=0", "limit=101", "limit=abc", "status=NOPE"):
        resp = await world.client.get(f"/interventions?{bad}", headers=world.auth(a))
        assert resp.status == 422, bad


async def test_a_token_outliving_its_deleted_account_gets_409_not_500(world: World) -> None:
    client = await world.user()
    headers = world.auth(client)  # an access token stays valid until it expires
    await world.db.execute("DELETE FROM users WHERE id = $1", client)
    resp = await world.client.post(
        "/interventions",
        json={"specialty": "PLUMBER", "lat": PARIS[0], "lon": PARIS[1]},
        headers=headers,
    )
    assert resp.status == 409
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["code"] == "conflict"
    assert await world.db.fetchval("SELECT count(*) FROM interventions") == 0


async def test_admin_may_cancel_and_read_any_intervention(world: World) -> None:
    admin = await world.user("ADMIN")
    client = await world.user()
    job = await world.request(client)
    resp = await world.client.get("/interventions", headers=world.auth(admin))
    assert [j["id"] for j in await resp.json()] == [job["id"]]
    resp = await world.client.post(f"/interventions/{job['id']}/cancel", headers=world.auth(admin))
    assert resp.status in (200, 409)  # 409 if the empty search already gave up
    assert await world.status(job["id"]) in ("CANCELLED", "UNFULFILLED")
