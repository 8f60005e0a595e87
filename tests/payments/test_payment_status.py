"""GET /interventions/{id}/payment: the client app reads the hold's client_secret and
confirms it with Stripe (here the fake server, as Stripe.js would), then sees it
authorised; nobody else sees anything."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import asyncpg
from aiohttp.test_utils import TestClient

from core.settings import Settings
from dispatch import appkeys as dispatch_keys
from tests.factories import bearer, create_user, insert_intervention, token_for
from tests.helpers import StartApp
from tests.payments.conftest import confirm_as_client_app, stripe_artisan
from tests.stripe_server import FakeStripe


async def _get(
    client: TestClient[Any, Any],
    settings: Settings,
    job: uuid.UUID | str,
    user: uuid.UUID,
    role: str,
) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    resp = await client.get(
        f"/interventions/{job}/payment", headers=bearer(token_for(settings, user, role))
    )
    return resp.status, await resp.json(), resp


async def test_client_reads_the_secret_confirms_and_sees_the_hold(
    start_app: StartApp,
    pay_settings: Settings,
    fake_stripe: tuple[FakeStripe, str],
    db: asyncpg.Connection,
    http: aiohttp.ClientSession,
) -> None:
    fake, stripe_base = fake_stripe
    client = await start_app(pay_settings)
    payments = client.app[dispatch_keys.PAYMENTS]
    artisan, _ = await stripe_artisan(db, fake, specialty="GLAZIER")
    customer = await create_user(db, role="CLIENT")
    price = await db.fetchval("SELECT amount FROM specialty_prices WHERE specialty = 'GLAZIER'")
    job = await insert_intervention(
        db, client_id=customer, artisan_id=None, status="SEARCHING", specialty="GLAZIER"
    )
    await db.execute(
        "UPDATE interventions SET price_amount = $2, price_currency = 'EUR' WHERE id = $1",
        job,
        price,
    )

    status, body, resp = await _get(client, pay_settings, job, customer, "CLIENT")
    assert status == 200
    assert body == {
        "intervention_id": str(job),
        "status": "NONE",
        "amount": price,
        "currency": "EUR",
        "client_secret": None,
        "intent_status": None,
        "stripe_mode": "test",
    }
    assert resp.headers["Cache-Control"] == "no-store"

    await db.execute(
        "UPDATE interventions SET status = 'ASSIGNED', artisan_id = $2 WHERE id = $1",
        job,
        artisan,
    )
    await payments.on_assigned(job)
    intent_id = await db.fetchval(
        "SELECT stripe_payment_intent_id FROM payments WHERE intervention_id = $1", job
    )
    status, body, _ = await _get(client, pay_settings, job, customer, "CLIENT")
    assert status == 200
    assert body["status"] == "PENDING"
    assert body["intent_status"] == "requires_payment_method"
    assert body["client_secret"] == fake.intents[intent_id]["client_secret"]
    assert (body["amount"], body["currency"]) == (price, "EUR")

    # The app confirms with the secret it was given (a wrong secret is refused by Stripe).
    assert await confirm_as_client_app(http, stripe_base, fake, intent_id + "_secret_nope") == 404
    assert await confirm_as_client_app(http, stripe_base, fake, body["client_secret"]) == 200
    assert fake.intents[intent_id]["status"] == "requires_capture"

    # No webhook yet: the GET reads Stripe and records the authorisation itself.
    status, body, _ = await _get(client, pay_settings, job, customer, "CLIENT")
    assert (status, body["status"], body["client_secret"]) == (200, "REQUIRES_CAPTURE", None)
    assert (
        await db.fetchval("SELECT status FROM payments WHERE intervention_id = $1", job)
        == "REQUIRES_CAPTURE"
    )
    # Once authorised the answer comes from our database: no more reads at Stripe.
    reads = len(fake.calls("GET", f"/v1/payment_intents/{intent_id}"))
    await db.execute("UPDATE interventions SET status = 'COMPLETED' WHERE id = $1", job)
    await payments.on_completed(job)
    status, body, _ = await _get(client, pay_settings, job, customer, "CLIENT")
    assert (status, body["status"], body["client_secret"]) == (200, "CAPTURED", None)
    assert len(fake.calls("GET", f"/v1/payment_intents/{intent_id}")) == reads


async def test_only_the_client_sees_it(
    start_app: StartApp,
    pay_settings: Settings,
    fake_stripe: tuple[FakeStripe, str],
    db: asyncpg.Connection,
) -> None:
    fake, _ = fake_stripe
    client = await start_app(pay_settings)
    artisan, _ = await stripe_artisan(db, fake)
    customer = await create_user(db, role="CLIENT")
    job = await insert_intervention(db, client_id=customer, artisan_id=artisan)
    await client.app[dispatch_keys.PAYMENTS].on_assigned(job)
    other_client = await create_user(db, role="CLIENT")
    admin = await create_user(db, role="ADMIN")
    for user, role in ((other_client, "CLIENT"), (artisan, "ARTISAN"), (admin, "ADMIN")):
        status, body, _ = await _get(client, pay_settings, job, user, role)
        assert (status, body["code"]) == (404, "not_found"), role
        assert "client_secret" not in body
    for bad_id in (uuid.uuid4(), "not-a-uuid", "1"):
        status, _, _ = await _get(client, pay_settings, bad_id, customer, "CLIENT")
        assert status == 404
    resp = await client.get(f"/interventions/{job}/payment")
    assert resp.status == 401


async def test_stripe_down_and_payments_off(
    start_app: StartApp,
    settings: Settings,
    pay_settings: Settings,
    fake_stripe: tuple[FakeStripe, str],
    db: asyncpg.Connection,
) -> None:
    fake, _ = fake_stripe
    client = await start_app(pay_settings)
    artisan, _ = await stripe_artisan(db, fake)
    customer = await create_user(db, role="CLIENT")
    job = await insert_intervention(db, client_id=customer, artisan_id=artisan)
    await client.app[dispatch_keys.PAYMENTS].on_assigned(job)
    fake.fail_next = 3  # more failures than the SDK retries
    status, body, _ = await _get(client, pay_settings, job, customer, "CLIENT")
    assert (status, body["code"]) == (503, "payments_unavailable")
    status, body, _ = await _get(client, pay_settings, job, customer, "CLIENT")
    assert (status, body["status"]) == (200, "PENDING")

    off = await start_app(settings)
    status, body, _ = await _get(off, settings, job, customer, "CLIENT")
    assert status == 200
    assert body["status"] == "DISABLED"
    assert body["client_secret"] is None and body["stripe_mode"] is None
    status, _, _ = await _get(off, settings, job, artisan, "ARTISAN")
    assert status == 404
