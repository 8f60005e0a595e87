"""POST /webhooks/stripe: signatures, replays, out-of-order delivery, and onboarding."""

from __future__ import annotations

import io
import time
import uuid
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from core.settings import Settings
from dispatch import appkeys as dispatch_keys
from tests.factories import bearer, create_user, insert_intervention, token_for
from tests.helpers import StartApp
from tests.payments.conftest import WEBHOOK_SECRET
from tests.stripe_server import FakeStripe, sign


def _url(client: TestClient[Any, Any]) -> str:
    return str(client.make_url("/webhooks/stripe"))


async def _onboarded_artisan(
    client: TestClient[Any, Any], db: asyncpg.Connection, settings: Settings
) -> tuple[uuid.UUID, dict[str, Any], str]:
    artisan = await create_user(db, role="ARTISAN")
    auth = bearer(token_for(settings, artisan, "ARTISAN"))
    resp = await client.post("/artisan/payouts/onboarding", headers=auth)
    assert resp.status == 200, await resp.text()
    link = await resp.json()
    account = await db.fetchval(
        "SELECT stripe_account_id FROM artisans WHERE user_id = $1", artisan
    )
    return artisan, link, account


async def test_onboarding_creates_one_express_account_and_fresh_links(
    start_app: StartApp,
    pay_settings: Settings,
    fake_stripe: tuple[FakeStripe, str],
    db: asyncpg.Connection,
) -> None:
    fake, _ = fake_stripe
    client = await start_app(pay_settings)
    artisan, link, account = await _onboarded_artisan(client, db, pay_settings)
    assert link["url"].startswith("https://connect.stripe.test/setup/")
    assert link["expires_at"].endswith("Z")
    assert fake.accounts[account]["type"] == "express"
    assert fake.accounts[account]["metadata"] == {"artisan_id": str(artisan)}
    resp = await client.post(
        "/artisan/payouts/onboarding", headers=bearer(token_for(pay_settings, artisan, "ARTISAN"))
    )
    assert resp.status == 200
    assert len(fake.calls("POST", "/v1/accounts")) == 1
    assert fake.calls("POST", "/v1/accounts")[0].idempotency_key == f"acct-create-{artisan}"
    # Every POST we sent carried an idempotency key derived from our ids.
    posts = [r for r in fake.requests if r.method == "POST"]
    assert posts and all(r.idempotency_key and str(artisan) in r.idempotency_key for r in posts)


async def test_bad_missing_and_stale_signatures_are_refused(
    start_app: StartApp,
    pay_settings: Settings,
    fake_stripe: tuple[FakeStripe, str],
    db: asyncpg.Connection,
) -> None:
    fake, _ = fake_stripe
    client = await start_app(pay_settings)
    _, _, account = await _onboarded_artisan(client, db, pay_settings)
    event = fake.complete_onboarding(account)
    url = _url(client)
    status, body = await fake.deliver(url, event, "whsec_wrong_secret")
    assert (status, body["code"]) == (400, "invalid_signature")
    status, _ = await fake.deliver(url, event, WEBHOOK_SECRET, timestamp=int(time.time()) - 301)
    assert status == 400
    status, _ = await fake.deliver(url, event, WEBHOOK_SECRET, signature="")
    assert status == 400
    status, _ = await fake.deliver(url, event, WEBHOOK_SECRET, signature="t=1,v1=deadbeef")
    assert status == 400
    resp = await client.post("/webhooks/stripe", data=b"{}")
    assert resp.status == 400
    # A body altered after signing fails too.
    payload = '{"id":"evt_1","object":"event","type":"account.updated","data":{"object":{}}}'
    header = sign(payload, WEBHOOK_SECRET)
    resp = await client.post(
        "/webhooks/stripe",
        data=payload.replace("evt_1", "evt_2").encode(),
        headers={"Stripe-Signature": header},
    )
    assert resp.status == 400
    assert await db.fetchval("SELECT count(*) FROM processed_webhooks") == 0
    assert not await db.fetchval(
        "SELECT payouts_enabled FROM artisans WHERE stripe_account_id = $1", account
    )

    status, body = await fake.deliver(url, event, WEBHOOK_SECRET)
    assert (status, body) == (200, {"received": True, "duplicate": False})
    assert await db.fetchval(
        "SELECT payouts_enabled FROM artisans WHERE stripe_account_id = $1", account
    )


async def test_replayed_event_has_no_second_effect(
    start_app: StartApp,
    pay_settings: Settings,
    fake_stripe: tuple[FakeStripe, str],
    db: asyncpg.Connection,
) -> None:
    fake, _ = fake_stripe
    client = await start_app(pay_settings)
    artisan, _, account = await _onboarded_artisan(client, db, pay_settings)
    event = fake.complete_onboarding(account)
    assert (await fake.deliver(_url(client), event, WEBHOOK_SECRET))[0] == 200
    profile = await (
        await client.get(
            "/artisan/profile", headers=bearer(token_for(pay_settings, artisan, "ARTISAN"))
        )
    ).json()
    assert profile["payouts_enabled"] is True
    # Someone disables payouts on our side; a replay of the old event must not re-apply it.
    await db.execute("UPDATE artisans SET payouts_enabled = false WHERE user_id = $1", artisan)
    retrievals = len(fake.calls("GET", f"/v1/accounts/{account}"))
    status, body = await fake.deliver(_url(client), event, WEBHOOK_SECRET)
    assert (status, body["duplicate"]) == (200, True)
    assert not await db.fetchval("SELECT payouts_enabled FROM artisans WHERE user_id = $1", artisan)
    assert len(fake.calls("GET", f"/v1/accounts/{account}")) == retrievals
    assert await db.fetchval("SELECT count(*) FROM processed_webhooks") == 1


async def test_out_of_order_events_converge_on_the_current_state(
    start_app: StartApp,
    pay_settings: Settings,
    fake_stripe: tuple[FakeStripe, str],
    db: asyncpg.Connection,
) -> None:
    fake, _ = fake_stripe
    client = await start_app(pay_settings)
    artisan, _, account = await _onboarded_artisan(client, db, pay_settings)
    customer = await create_user(db, role="CLIENT")
    job = await insert_intervention(db, client_id=customer, artisan_id=artisan)
    payments = client.app[dispatch_keys.PAYMENTS]
    fake.events.clear()
    await payments.on_assigned(job)
    intent_id = await db.fetchval(
        "SELECT stripe_payment_intent_id FROM payments WHERE intervention_id = $1", job
    )
    fake.confirm(intent_id)
    await db.execute(
        "UPDATE payments SET status = 'REQUIRES_CAPTURE' WHERE intervention_id = $1", job
    )
    await db.execute("UPDATE interventions SET status = 'COMPLETED' WHERE id = $1", job)
    await payments.on_completed(job)
    types = [e["type"] for e in fake.events]
    assert types == [
        "payment_intent.created",
        "payment_intent.amount_capturable_updated",
        "payment_intent.succeeded",
    ]
    # Reset our row as if nothing had been recorded, then deliver newest first.
    await db.execute("UPDATE payments SET status = 'PENDING' WHERE intervention_id = $1", job)
    for event in reversed(fake.events[:]):
        assert (await fake.deliver(_url(client), event, WEBHOOK_SECRET))[0] == 200
        status = await db.fetchval("SELECT status FROM payments WHERE intervention_id = $1", job)
        assert status == "CAPTURED", event["type"]  # the stale snapshots never win

    # Accounts too: enabled, then disabled; the older event arrives last.
    enabled = fake.complete_onboarding(account, payouts_enabled=True)
    disabled = fake.complete_onboarding(account, payouts_enabled=False)
    for event in (disabled, enabled):
        assert (await fake.deliver(_url(client), event, WEBHOOK_SECRET))[0] == 200
    assert not await db.fetchval("SELECT payouts_enabled FROM artisans WHERE user_id = $1", artisan)

    # A refund's charge event marks the payment refunded.
    await payments.on_cancelled(job)
    await db.execute("UPDATE payments SET status = 'CAPTURED' WHERE intervention_id = $1", job)
    refunded = [e for e in fake.events if e["type"] == "charge.refunded"]
    assert (await fake.deliver(_url(client), refunded[-1], WEBHOOK_SECRET))[0] == 200
    assert (
        await db.fetchval("SELECT status FROM payments WHERE intervention_id = $1", job)
        == "REFUNDED"
    )


async def test_unknown_events_are_acknowledged_and_stripe_outages_retried(
    start_app: StartApp,
    pay_settings: Settings,
    fake_stripe: tuple[FakeStripe, str],
    db: asyncpg.Connection,
) -> None:
    fake, _ = fake_stripe
    client = await start_app(pay_settings)
    _, _, account = await _onboarded_artisan(client, db, pay_settings)
    other = {
        "id": "evt_other",
        "object": "event",
        "type": "customer.created",
        "created": int(time.time()),
        "data": {"object": {"id": "cus_1", "object": "customer"}},
    }
    assert await fake.deliver(_url(client), other, WEBHOOK_SECRET) == (
        200,
        {"received": True, "duplicate": False},
    )
    event = fake.complete_onboarding(account)
    fake.fail_next = 3
    status, body = await fake.deliver(_url(client), event, WEBHOOK_SECRET)
    assert (status, body["code"]) == (503, "payments_unavailable")
    # Not recorded: Stripe's redelivery is processed.
    assert (await fake.deliver(_url(client), event, WEBHOOK_SECRET))[0] == 200
    assert await db.fetchval(
        "SELECT payouts_enabled FROM artisans WHERE stripe_account_id = $1", account
    )


async def test_webhook_limits_and_disabled_payments(
    start_app: StartApp, settings: Settings, pay_settings: Settings
) -> None:
    client = await start_app(pay_settings)
    big = b'{"id":"' + b"x" * (1024 * 1024) + b'"}'
    resp = await client.post(
        "/webhooks/stripe", data=io.BytesIO(big), headers={"Stripe-Signature": "t=1,v1=0"}
    )
    assert resp.status == 413
    # Just under 1 MiB is read and checked (and refused for its signature, not its size).
    near = b'{"id":"' + b"x" * (1024 * 1024 - 100) + b'"}'
    resp = await client.post(
        "/webhooks/stripe", data=near, headers={"Stripe-Signature": "t=1,v1=0"}
    )
    assert resp.status == 400

    # Neither key nor secret: nothing can be verified.
    off = await start_app(settings)
    payload = '{"id":"evt_1","object":"event","type":"account.updated","data":{"object":{}}}'
    resp = await off.post(
        "/webhooks/stripe", data=payload.encode(), headers={"Stripe-Signature": sign(payload, "x")}
    )
    assert resp.status == 503
    assert (await resp.json())["code"] == "payments_disabled"


async def test_with_a_secret_and_payments_off_the_signature_is_checked_first(
    start_app: StartApp, settings: Settings, db: asyncpg.Connection
) -> None:
    client = await start_app(settings.replace(stripe_webhook_secret=WEBHOOK_SECRET))
    quiet = '{"id":"evt_q1","object":"event","type":"customer.created","data":{"object":{}}}'
    for headers in ({}, {"Stripe-Signature": "t=1,v1=0"}, {"Stripe-Signature": sign(quiet, "x")}):
        resp = await client.post("/webhooks/stripe", data=quiet.encode(), headers=headers)
        assert resp.status == 400, headers
        assert (await resp.json())["code"] == "invalid_signature"
    # a valid event that needs no call to Stripe is processed, once
    for duplicate in (False, True):
        resp = await client.post(
            "/webhooks/stripe",
            data=quiet.encode(),
            headers={"Stripe-Signature": sign(quiet, WEBHOOK_SECRET)},
        )
        assert resp.status == 200
        assert await resp.json() == {"received": True, "duplicate": duplicate}
    assert await db.fetchval("SELECT count(*) FROM processed_webhooks") == 1
    # one that needs Stripe's current object waits for payments to be on (Stripe retries)
    acting = (
        '{"id":"evt_q2","object":"event","type":"account.updated",'
        '"data":{"object":{"id":"acct_1","object":"account"}}}'
    )
    resp = await client.post(
        "/webhooks/stripe",
        data=acting.encode(),
        headers={"Stripe-Signature": sign(acting, WEBHOOK_SECRET)},
    )
    assert resp.status == 503
    assert (await resp.json())["code"] == "payments_disabled"
    assert await db.fetchval("SELECT count(*) FROM processed_webhooks") == 1
