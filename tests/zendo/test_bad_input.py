"""Bad input answers 4xx, never 500 (CONTRACT §1, issue 18): U+0000 wherever a string
reaches PostgreSQL, whole floats where the document says integer, a webhook without
its signature."""

from __future__ import annotations

from tests.factories import bearer, create_user, token_for
from tests.world import PARIS, World


async def test_nul_in_an_address_and_a_reject_reason_is_422(world: World) -> None:
    client = await world.user()
    resp = await world.client.post(
        "/interventions",
        json={
            "specialty": "PLUMBER",
            "lat": PARIS[0],
            "lon": PARIS[1],
            "address": "1 rue\u0000de Rivoli",
        },
        headers=world.auth(client),
    )
    assert resp.status == 422
    assert (await resp.json())["errors"] == [
        {"field": "address", "message": "must not contain U+0000"}
    ]
    assert await world.db.fetchval("SELECT count(*) FROM interventions") == 0
    artisan = await create_user(world.db, role="ARTISAN", artisan_status="PENDING")
    admin = await create_user(world.db, role="ADMIN")
    resp = await world.client.post(
        f"/admin/artisans/{artisan}/reject",
        json={"reason": "\u0000"},
        headers=bearer(token_for(world.settings, admin, "ADMIN")),
    )
    assert resp.status == 422
    assert (await resp.json())["errors"][0]["field"] == "reason"


async def test_a_whole_float_is_an_integer_and_a_fraction_is_not(world: World) -> None:
    artisan = await create_user(world.db, role="ARTISAN")
    auth = bearer(token_for(world.settings, artisan, "ARTISAN"))
    declare = {"kind": "KBIS", "content_type": "application/pdf"}
    resp = await world.client.post(
        "/artisan/documents", json={**declare, "size_bytes": 220.0}, headers=auth
    )
    assert resp.status == 201
    resp = await world.client.post(
        "/artisan/documents", json={**declare, "size_bytes": 220.5}, headers=auth
    )
    assert resp.status == 422
    assert (await resp.json())["errors"][0]["field"] == "size_bytes"
    resp = await world.client.post(
        "/artisan/documents", json={**declare, "size_bytes": "220"}, headers=auth
    )
    assert resp.status == 422


async def test_a_webhook_without_signature_is_400_even_with_payments_off(world: World) -> None:
    assert not world.settings.payments_enabled
    resp = await world.client.post("/webhooks/stripe", json={})
    assert resp.status == 400
    assert (await resp.json())["code"] == "invalid_signature"
    resp = await world.client.post("/webhooks/stripe", json={}, headers={"Stripe-Signature": "x"})
    assert resp.status == 503
    assert (await resp.json())["code"] == "payments_disabled"
