"""Bad paths of the webhook and the lifecycle hooks: never a 500, never an exception
into the lifecycle, nothing recorded or changed by what cannot be applied."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from core.settings import Settings
from dispatch import appkeys as dispatch_keys
from tests.factories import create_user, insert_intervention
from tests.helpers import StartApp
from tests.payments.conftest import WEBHOOK_SECRET, stripe_artisan
from tests.stripe_server import FakeStripe, StripeFailure, sign


async def _post_signed(client: TestClient[Any, Any], payload: str) -> tuple[int, dict[str, Any]]:
    resp = await client.post(
        "/webhooks/stripe",
        data=payload.encode(),
        headers={"Stripe-Signature": sign(payload, WEBHOOK_SECRET)},
    )
    return resp.status, await resp.json()


def _event(event_id: str, type_: str, data: Any) -> str:
    return json.dumps({"id": event_id, "object": "event", "type": type_, "data": data})


async def test_signed_but_malformed_events_are_400(
    start_app: StartApp,
    pay_settings: Settings,
    fake_stripe: tuple[FakeStripe, str],
    db: asyncpg.Connection,
) -> None:
    fake, _ = fake_stripe
    client = await start_app(pay_settings)
    payloads = [
        "[]",
        '"evt_1"',
        "null",
        "1",
        "{}",
        "not json",
        '{"id": 5, "type": "account.updated"}',
        '{"id": "evt_no_type"}',
        '{"id": "evt_1", "type": 7}',
        '{"id": "evt_\\u0000", "type": "account.updated"}',
        json.dumps({"id": "evt_" + "e" * 300, "type": "account.updated"}),
        json.dumps({"id": "evt_1", "type": "x" * 101}),
        json.dumps({"id": {"nested": True}, "type": "account.updated"}),
        "[" * 20000 + "]" * 20000,  # deeper than the JSON decoder goes
    ]
    for payload in payloads:
        status, body = await _post_signed(client, payload)
        assert (status, body["code"]) == (400, "malformed_event"), payload[:40]
        assert body["type"] and "Traceback" not in body["detail"]
    # Not UTF-8 at all.
    resp = await client.post(
        "/webhooks/stripe", data=b"\xff\xfe{}", headers={"Stripe-Signature": "t=1,v1=00"}
    )
    assert resp.status == 400
    assert await db.fetchval("SELECT count(*) FROM processed_webhooks") == 0
    assert fake.requests == []  # nothing was looked up at Stripe


async def test_events_about_unknown_or_odd_objects_are_acknowledged(
    start_app: StartApp,
    pay_settings: Settings,
    fake_stripe: tuple[FakeStripe, str],
    db: asyncpg.Connection,
) -> None:
    fake, _ = fake_stripe
    client = await start_app(pay_settings)
    artisan, account = await stripe_artisan(db, fake)
    await db.execute("UPDATE artisans SET payouts_enabled = false WHERE user_id = $1", artisan)

    # Ids Stripe does not know: looked up, 404, acknowledged, nothing changed.
    unknown = [
        ("evt_u1", "payment_intent.succeeded", "pi_unknown"),
        ("evt_u2", "account.updated", "acct_unknown"),
        ("evt_u3", "charge.refunded", "ch_unknown"),
    ]
    for event_id, type_, object_id in unknown:
        status, body = await _post_signed(
            client, _event(event_id, type_, {"object": {"id": object_id}})
        )
        assert (status, body) == (200, {"received": True, "duplicate": False}), type_
    assert len([r for r in fake.requests if r.method == "GET"]) == 3

    # No usable object id: acknowledged without any lookup.
    odd = [
        {"object": {"id": "../accounts"}},
        {"object": {"id": ""}},
        {"object": {"id": "pi_1?expand[]=x"}},
        {"object": {"id": 42}},
        {"object": ["pi_1"]},
        {"object": {}},
        "pi_1",
        None,
    ]
    for n, data in enumerate(odd):
        status, _ = await _post_signed(
            client, _event(f"evt_odd{n}", "payment_intent.created", data)
        )
        assert status == 200, data
    assert len([r for r in fake.requests if r.method == "GET"]) == 3

    # A PaymentIntent that exists at Stripe but has no payments row here.
    api = client.app[dispatch_keys.PAYMENTS].api
    intent = await api.create_payment_intent(
        {"amount": 500, "currency": "eur", "capture_method": "manual"},
        idempotency_key="not-ours",
    )
    fake.confirm(intent.id)
    status, _ = await _post_signed(
        client, _event("evt_foreign", "payment_intent.succeeded", {"object": {"id": intent.id}})
    )
    assert status == 200
    assert await db.fetchval("SELECT count(*) FROM payments") == 0

    # Stripe will not show us the account (another platform's): dropped, not retried.
    fake.next_failures.append(
        StripeFailure(403, "account_invalid", "Not connected to you", "invalid_request_error")
    )
    status, _ = await _post_signed(
        client, _event("evt_forbidden", "account.updated", {"object": {"id": account}})
    )
    assert status == 200
    assert not await db.fetchval("SELECT payouts_enabled FROM artisans WHERE user_id = $1", artisan)
    assert await db.fetchval("SELECT count(*) FROM processed_webhooks") == 3 + len(odd) + 2


async def test_hooks_tolerate_unknown_ids_and_missing_rows(
    start_app: StartApp,
    pay_settings: Settings,
    fake_stripe: tuple[FakeStripe, str],
    db: asyncpg.Connection,
) -> None:
    fake, _ = fake_stripe
    client = await start_app(pay_settings)
    payments = client.app[dispatch_keys.PAYMENTS]
    nobody = uuid.uuid4()
    for hook in (payments.on_assigned, payments.on_completed, payments.on_cancelled):
        await hook(nobody)  # an id that is no intervention: no exception
    artisan, _ = await stripe_artisan(db, fake)
    customer = await create_user(db, role="CLIENT")
    searching = await insert_intervention(
        db, client_id=customer, artisan_id=None, status="SEARCHING"
    )
    completed = await insert_intervention(
        db, client_id=customer, artisan_id=artisan, status="COMPLETED"
    )
    cancelled = await insert_intervention(
        db, client_id=customer, artisan_id=artisan, status="CANCELLED"
    )
    await payments.on_assigned(searching)  # no artisan yet: nothing to hold
    await payments.on_assigned(cancelled)  # too late: nothing to hold
    await payments.on_completed(completed)  # no payments row: nothing to capture
    await payments.on_cancelled(cancelled)  # no payments row: nothing to release
    assert fake.requests == []
    assert await db.fetchval("SELECT count(*) FROM payments") == 0
    assert await payments.reconcile(min_age_s=0) == 0

    # An artisan without a Stripe account: recorded, not raised; retried later.
    no_account = await create_user(db, role="ARTISAN")
    job = await insert_intervention(db, client_id=customer, artisan_id=no_account)
    await payments.on_assigned(job)
    row = await db.fetchrow(
        "SELECT status, last_error FROM payments WHERE intervention_id = $1", job
    )
    assert (row["status"], row["last_error"]) == (
        "PENDING",
        "the artisan has no Stripe account yet",
    )
    assert fake.requests == []
