"""The payment hooks of the intervention lifecycle, against the fake Stripe server
through the real SDK: hold on assignment, capture on completion, cancel or refund."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from core.settings import Settings
from dispatch import appkeys as dispatch_keys
from dispatch.payments.service import PaymentsService, platform_fee
from tests.factories import bearer, create_user, insert_intervention, token_for
from tests.helpers import StartApp
from tests.stripe_server import FakeStripe


async def _assigned_job(
    db: asyncpg.Connection, fake: FakeStripe, *, specialty: str = "LOCKSMITH"
) -> tuple[uuid.UUID, uuid.UUID, str]:
    artisan = await create_user(db, role="ARTISAN", specialty=specialty)
    account = "acct_" + uuid.uuid4().hex[:10]
    fake.accounts[account] = {"id": account, "object": "account", "payouts_enabled": True}
    await db.execute(
        "UPDATE artisans SET stripe_account_id = $2, payouts_enabled = true WHERE user_id = $1",
        artisan,
        account,
    )
    customer = await create_user(db, role="CLIENT")
    job = await insert_intervention(db, client_id=customer, artisan_id=artisan, specialty=specialty)
    return job, artisan, account


async def _payment(db: asyncpg.Connection, job: uuid.UUID) -> asyncpg.Record:
    row = await db.fetchrow("SELECT * FROM payments WHERE intervention_id = $1", job)
    assert row is not None
    return row


async def _set_status(db: asyncpg.Connection, job: uuid.UUID, status: str) -> None:
    """The lifecycle commits the job's new status, then calls the payment hook."""
    await db.execute("UPDATE interventions SET status = $2 WHERE id = $1", job, status)


async def _service(
    start_app: StartApp, pay_settings: Settings
) -> tuple[TestClient[Any, Any], PaymentsService]:
    client = await start_app(pay_settings)
    return client, client.app[dispatch_keys.PAYMENTS]


async def test_hold_on_assignment_uses_the_server_price(
    start_app: StartApp,
    pay_settings: Settings,
    fake_stripe: tuple[FakeStripe, str],
    db: asyncpg.Connection,
) -> None:
    fake, _ = fake_stripe
    _, payments = await _service(start_app, pay_settings)
    job, _, account = await _assigned_job(db, fake, specialty="LOCKSMITH")
    price = await db.fetchval("SELECT amount FROM specialty_prices WHERE specialty = 'LOCKSMITH'")

    await payments.on_assigned(job)

    creates = fake.calls("POST", "/v1/payment_intents")
    assert len(creates) == 1
    params = creates[0].params
    assert creates[0].idempotency_key == f"pi-create-{job}"
    assert params["amount"] == str(price)
    assert params["currency"] == "eur"
    assert params["capture_method"] == "manual"
    assert params["application_fee_amount"] == str(platform_fee(price, 15.0))
    assert params["transfer_data"] == {"destination": account}
    assert params["metadata"]["intervention_id"] == str(job)
    payment = await _payment(db, job)
    assert (payment["amount"], payment["currency"], payment["status"]) == (price, "EUR", "PENDING")
    assert payment["stripe_payment_intent_id"] in fake.intents
    job_price = await db.fetchrow(
        "SELECT price_amount, price_currency FROM interventions WHERE id = $1", job
    )
    assert tuple(job_price) == (price, "EUR")

    # Called again (a retry by the lifecycle): nothing new at Stripe.
    await payments.on_assigned(job)
    assert len(fake.calls("POST", "/v1/payment_intents")) == 1


async def test_lost_response_is_replayed_by_idempotency_key(
    start_app: StartApp,
    pay_settings: Settings,
    fake_stripe: tuple[FakeStripe, str],
    db: asyncpg.Connection,
) -> None:
    fake, _ = fake_stripe
    _, payments = await _service(start_app, pay_settings)
    job, _, _ = await _assigned_job(db, fake)
    fake.fail_next = 3  # Stripe down: more failures than the SDK retries
    await payments.on_assigned(job)  # never raises into the lifecycle
    payment = await _payment(db, job)
    assert payment["stripe_payment_intent_id"] is None
    assert "APIError" in payment["last_error"]
    assert fake.intents == {}

    await payments.on_assigned(job)  # retry works
    first = (await _payment(db, job))["stripe_payment_intent_id"]
    assert first is not None and (await _payment(db, job))["last_error"] is None
    # We lose the answer (crash before saving it) and retry: same key, same PaymentIntent.
    await db.execute(
        "UPDATE payments SET stripe_payment_intent_id = NULL WHERE intervention_id = $1", job
    )
    await payments.on_assigned(job)
    assert (await _payment(db, job))["stripe_payment_intent_id"] == first
    assert len(fake.intents) == 1
    assert any(r.replayed for r in fake.requests if r.path == "/v1/payment_intents")


async def test_capture_on_completion(
    start_app: StartApp,
    pay_settings: Settings,
    fake_stripe: tuple[FakeStripe, str],
    db: asyncpg.Connection,
) -> None:
    fake, _ = fake_stripe
    _, payments = await _service(start_app, pay_settings)
    job, _, _ = await _assigned_job(db, fake)
    await payments.on_assigned(job)
    intent_id = (await _payment(db, job))["stripe_payment_intent_id"]
    fake.confirm(intent_id)  # the client authorised the card
    await db.execute(
        "UPDATE payments SET status = 'REQUIRES_CAPTURE' WHERE intervention_id = $1", job
    )

    await _set_status(db, job, "COMPLETED")
    await payments.on_completed(job)
    payment = await _payment(db, job)
    assert payment["status"] == "CAPTURED" and payment["captured_at"] is not None
    assert fake.intents[intent_id]["status"] == "succeeded"
    captures = fake.calls("POST", f"/v1/payment_intents/{intent_id}/capture")
    assert [c.idempotency_key for c in captures] == [f"pi-capture-{job}"]
    await payments.on_completed(job)
    assert len(fake.calls("POST", f"/v1/payment_intents/{intent_id}/capture")) == 1


async def test_capture_after_a_cancellation_is_handled(
    start_app: StartApp,
    pay_settings: Settings,
    fake_stripe: tuple[FakeStripe, str],
    db: asyncpg.Connection,
) -> None:
    fake, _ = fake_stripe
    _, payments = await _service(start_app, pay_settings)
    job, _, _ = await _assigned_job(db, fake)
    await payments.on_assigned(job)
    intent_id = (await _payment(db, job))["stripe_payment_intent_id"]
    fake.confirm(intent_id)
    await _set_status(db, job, "CANCELLED")
    await payments.on_cancelled(job)
    assert (await _payment(db, job))["status"] == "CANCELLED"
    assert fake.intents[intent_id]["status"] == "canceled"
    cancels = fake.calls("POST", f"/v1/payment_intents/{intent_id}/cancel")
    assert [c.idempotency_key for c in cancels] == [f"pi-cancel-{job}"]

    await payments.on_completed(job)  # no exception, no capture of a cancelled hold
    assert (await _payment(db, job))["status"] == "CANCELLED"
    assert fake.calls("POST", f"/v1/payment_intents/{intent_id}/capture") == []

    # Our row is stale (the webhook never came) while Stripe has cancelled: the capture
    # is refused by Stripe, and we converge on Stripe's state instead of failing.
    job2, _, _ = await _assigned_job(db, fake)
    await payments.on_assigned(job2)
    intent2 = (await _payment(db, job2))["stripe_payment_intent_id"]
    fake.confirm(intent2)
    fake.intents[intent2]["status"] = "canceled"
    await db.execute(
        "UPDATE payments SET status = 'REQUIRES_CAPTURE' WHERE intervention_id = $1", job2
    )
    await _set_status(db, job2, "COMPLETED")
    await payments.on_completed(job2)
    payment = await _payment(db, job2)
    assert payment["status"] == "CANCELLED"
    assert "payment_intent_unexpected_state" in payment["last_error"]


async def test_refund_after_capture_happens_once(
    start_app: StartApp,
    pay_settings: Settings,
    fake_stripe: tuple[FakeStripe, str],
    db: asyncpg.Connection,
) -> None:
    fake, _ = fake_stripe
    _, payments = await _service(start_app, pay_settings)
    job, _, _ = await _assigned_job(db, fake)
    await payments.on_assigned(job)
    intent_id = (await _payment(db, job))["stripe_payment_intent_id"]
    fake.confirm(intent_id)
    await _set_status(db, job, "COMPLETED")
    await payments.on_completed(job)
    assert (await _payment(db, job))["status"] == "CAPTURED"

    await payments.on_cancelled(job)  # e.g. an admin refund of a finished job
    payment = await _payment(db, job)
    assert payment["status"] == "REFUNDED" and payment["stripe_refund_id"] in fake.refunds
    refund = fake.refunds[payment["stripe_refund_id"]]
    assert refund["reverse_transfer"] and refund["refund_application_fee"]
    assert [r.idempotency_key for r in fake.calls("POST", "/v1/refunds")] == [f"refund-{job}"]

    await payments.on_cancelled(job)  # second cancel: no second refund
    assert len(fake.calls("POST", "/v1/refunds")) == 1
    # Even with our state lost, the idempotency key replays the first refund...
    await db.execute("UPDATE payments SET status = 'CAPTURED' WHERE intervention_id = $1", job)
    await payments.on_cancelled(job)
    assert len(fake.refunds) == 1
    assert (await _payment(db, job))["status"] == "REFUNDED"
    # ...and a refund Stripe already made (another key) is recognised, not an error.
    client = payments.api
    assert client is not None
    try:
        await client.refund_payment_intent(intent_id, idempotency_key="refund-other")
    except Exception as exc:
        assert getattr(exc, "code", None) == "charge_already_refunded"
    else:
        raise AssertionError("Stripe refunded twice")
    await db.execute("UPDATE payments SET status = 'CAPTURED' WHERE intervention_id = $1", job)
    fake._idempotent.pop(f"refund-{job}")  # the key expired (Stripe keeps them 24 h)
    await payments.on_cancelled(job)
    assert (await _payment(db, job))["status"] == "REFUNDED"
    assert len(fake.refunds) == 1


async def test_hooks_are_no_ops_without_a_stripe_key(
    start_app: StartApp, settings: Settings, db: asyncpg.Connection
) -> None:
    client = await start_app(settings)
    payments = client.app[dispatch_keys.PAYMENTS]
    assert not payments.enabled
    artisan = await create_user(db, role="ARTISAN")
    customer = await create_user(db, role="CLIENT")
    job = await insert_intervention(db, client_id=customer, artisan_id=artisan)
    await payments.on_assigned(job)
    await payments.on_completed(job)
    await payments.on_cancelled(job)
    assert await db.fetchval("SELECT count(*) FROM payments") == 0
    resp = await client.post(
        "/artisan/payouts/onboarding", headers=bearer(token_for(settings, artisan, "ARTISAN"))
    )
    assert resp.status == 503
    assert (await resp.json())["code"] == "payments_disabled"
    ready = await (await client.get("/readyz")).json()
    assert ready["payments"].startswith("disabled")


async def test_clients_cannot_set_the_amount(
    start_app: StartApp,
    pay_settings: Settings,
    fake_stripe: tuple[FakeStripe, str],
    db: asyncpg.Connection,
) -> None:
    fake, _ = fake_stripe
    client, payments = await _service(start_app, pay_settings)
    customer = await create_user(db, role="CLIENT")
    auth = bearer(token_for(pay_settings, customer, "CLIENT"))
    body = {"specialty": "HEATING", "lat": 48.8566, "lon": 2.3522, "address": "1 rue de Rivoli"}
    for extra in ({"price": {"amount": 1, "currency": "EUR"}}, {"amount": 1}, {"price_amount": 1}):
        resp = await client.post("/interventions", json={**body, **extra}, headers=auth)
        assert resp.status == 422, extra
    resp = await client.post("/interventions", json=body, headers=auth)
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    price = await db.fetchval("SELECT amount FROM specialty_prices WHERE specialty = 'HEATING'")
    assert created["price"] == {"amount": price, "currency": "EUR"}

    # The held amount is the server's price, whatever happened to the client's request.
    job, _, _ = await _assigned_job(db, fake, specialty="HEATING")
    await payments.on_assigned(job)
    assert fake.calls("POST", "/v1/payment_intents")[0].params["amount"] == str(price)
    assert json.loads(json.dumps(created))["price"]["amount"] == price


async def test_reconcile_retries_unfinished_steps(
    start_app: StartApp,
    pay_settings: Settings,
    fake_stripe: tuple[FakeStripe, str],
    db: asyncpg.Connection,
) -> None:
    fake, _ = fake_stripe
    _, payments = await _service(start_app, pay_settings)
    job, _, _ = await _assigned_job(db, fake)
    fake.fail_next = 3
    await payments.on_assigned(job)  # Stripe was down: nothing held
    assert (await _payment(db, job))["stripe_payment_intent_id"] is None
    assert await payments.reconcile(min_age_s=0) == 1
    intent_id = (await _payment(db, job))["stripe_payment_intent_id"]
    assert intent_id in fake.intents

    # Completed while the capture could not run: the next pass captures.
    fake.confirm(intent_id)
    await db.execute(
        "UPDATE payments SET status = 'REQUIRES_CAPTURE' WHERE intervention_id = $1", job
    )
    await db.execute("UPDATE interventions SET status = 'COMPLETED' WHERE id = $1", job)
    assert await payments.reconcile(min_age_s=0) == 1
    assert (await _payment(db, job))["status"] == "CAPTURED"
    assert await payments.reconcile(min_age_s=0) == 0
