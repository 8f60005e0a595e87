"""A job given back by its artisan and accepted by another: the first hold is released,
a second one (a new attempt, new idempotency keys) pays the new artisan, whatever order
the lifecycle's background hooks run in."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import asyncpg
from aiohttp.test_utils import TestClient

from core.settings import Settings
from dispatch import appkeys as dispatch_keys
from dispatch.payments.service import PaymentsService
from tests.factories import bearer, create_user, insert_intervention, token_for
from tests.helpers import StartApp
from tests.payments.conftest import WEBHOOK_SECRET, confirm_as_client_app, stripe_artisan
from tests.stripe_server import FakeStripe


async def _payment(db: asyncpg.Connection, job: uuid.UUID) -> asyncpg.Record:
    row = await db.fetchrow("SELECT * FROM payments WHERE intervention_id = $1", job)
    assert row is not None
    return row


async def _give_back(db: asyncpg.Connection, job: uuid.UUID) -> None:
    """What the withdraw transition commits: back to SEARCHING, no artisan."""
    await db.execute(
        "UPDATE interventions SET status = 'SEARCHING', artisan_id = NULL WHERE id = $1", job
    )


async def _assign(db: asyncpg.Connection, job: uuid.UUID, artisan: uuid.UUID) -> None:
    await db.execute(
        "UPDATE interventions SET status = 'ASSIGNED', artisan_id = $2 WHERE id = $1",
        job,
        artisan,
    )


async def _setup(
    start_app: StartApp, pay_settings: Settings, fake: FakeStripe, db: asyncpg.Connection
) -> tuple[TestClient[Any, Any], PaymentsService, uuid.UUID, uuid.UUID, dict[str, Any]]:
    client = await start_app(pay_settings)
    (first, first_acct), (second, second_acct) = [await stripe_artisan(db, fake) for _ in "ab"]
    customer = await create_user(db, role="CLIENT")
    job = await insert_intervention(db, client_id=customer, artisan_id=first)
    people = {"first": first, "second": second, "first_acct": first_acct}
    people["second_acct"] = second_acct
    return client, client.app[dispatch_keys.PAYMENTS], job, customer, people


async def test_give_back_then_another_artisan_completes(
    start_app: StartApp,
    pay_settings: Settings,
    fake_stripe: tuple[FakeStripe, str],
    db: asyncpg.Connection,
    http: aiohttp.ClientSession,
) -> None:
    fake, stripe_base = fake_stripe
    client, payments, job, customer, who = await _setup(start_app, pay_settings, fake, db)
    auth = bearer(token_for(pay_settings, customer, "CLIENT"))

    await payments.on_assigned(job)
    first_intent = (await _payment(db, job))["stripe_payment_intent_id"]
    secret = (await (await client.get(f"/interventions/{job}/payment", headers=auth)).json())[
        "client_secret"
    ]
    assert await confirm_as_client_app(http, stripe_base, fake, secret) == 200

    await _give_back(db, job)
    await payments.on_cancelled(job)
    payment = await _payment(db, job)
    assert (payment["status"], payment["attempt"]) == ("CANCELLED", 1)
    assert fake.intents[first_intent]["status"] == "canceled"
    view = await (await client.get(f"/interventions/{job}/payment", headers=auth)).json()
    assert (view["status"], view["client_secret"]) == ("NONE", None)

    await _assign(db, job, who["second"])
    await payments.on_assigned(job)
    payment = await _payment(db, job)
    second_intent = payment["stripe_payment_intent_id"]
    assert second_intent not in (None, first_intent)
    assert (payment["status"], payment["attempt"], payment["artisan_id"]) == (
        "PENDING",
        2,
        who["second"],
    )
    assert payment["previous_intent_ids"] == [first_intent]
    held = fake.intents[second_intent]
    assert held["transfer_data"] == {"destination": who["second_acct"]}
    assert held["capture_method"] == "manual" and held["metadata"]["attempt"] == "2"

    # The client is asked again, for the new hold.
    view = await (await client.get(f"/interventions/{job}/payment", headers=auth)).json()
    assert view["status"] == "PENDING" and view["client_secret"] == held["client_secret"]
    assert await confirm_as_client_app(http, stripe_base, fake, view["client_secret"]) == 200

    # The first hold's late webhooks cannot touch the second one.
    for event in [e for e in fake.events if e["data"]["object"].get("id") == first_intent]:
        status, _ = await fake.deliver(
            str(client.make_url("/webhooks/stripe")), event, WEBHOOK_SECRET
        )
        assert status == 200
    payment = await _payment(db, job)
    assert (payment["stripe_payment_intent_id"], payment["attempt"]) == (second_intent, 2)
    assert payment["status"] in ("PENDING", "REQUIRES_CAPTURE")
    # A stale cancel hook (the give-back's, run late) leaves the new artisan's hold alone.
    await payments.on_cancelled(job)
    assert fake.intents[second_intent]["status"] == "requires_capture"

    await db.execute("UPDATE interventions SET status = 'COMPLETED' WHERE id = $1", job)
    await payments.on_completed(job)
    payment = await _payment(db, job)
    assert payment["status"] == "CAPTURED"
    assert fake.intents[second_intent]["status"] == "succeeded"
    assert fake.intents[first_intent]["status"] == "canceled"
    assert fake.post_calls() == [
        ("/v1/payment_intents", f"pi-create-{job}"),
        (f"/v1/payment_intents/{first_intent}/cancel", f"pi-cancel-{job}"),
        ("/v1/payment_intents", f"pi-create-{job}-2"),
        (f"/v1/payment_intents/{second_intent}/capture", f"pi-capture-{job}-2"),
    ]


async def test_new_acceptance_before_the_give_back_hook(
    start_app: StartApp,
    pay_settings: Settings,
    fake_stripe: tuple[FakeStripe, str],
    db: asyncpg.Connection,
) -> None:
    """The hooks run as background tasks: on_assigned for the second artisan may come
    before on_cancelled for the first. It releases the first hold itself."""
    fake, _ = fake_stripe
    _, payments, job, _, who = await _setup(start_app, pay_settings, fake, db)
    await payments.on_assigned(job)
    first_intent = (await _payment(db, job))["stripe_payment_intent_id"]
    fake.confirm(first_intent)

    await _give_back(db, job)
    await _assign(db, job, who["second"])
    await asyncio.gather(payments.on_assigned(job), payments.on_assigned(job))
    await payments.on_cancelled(job)  # the give-back's hook, late
    payment = await _payment(db, job)
    second_intent = payment["stripe_payment_intent_id"]
    assert (payment["status"], payment["attempt"]) == ("PENDING", 2)
    assert fake.intents[first_intent]["status"] == "canceled"
    assert fake.intents[second_intent]["status"] == "requires_payment_method"
    assert fake.intents[second_intent]["transfer_data"] == {"destination": who["second_acct"]}
    assert len(fake.intents) == 2  # the concurrent second call was replayed by its key
    assert fake.post_calls() == [
        ("/v1/payment_intents", f"pi-create-{job}"),
        (f"/v1/payment_intents/{first_intent}/cancel", f"pi-cancel-{job}"),
        ("/v1/payment_intents", f"pi-create-{job}-2"),
    ]


async def test_completion_never_captures_a_previous_artisans_hold(
    start_app: StartApp,
    pay_settings: Settings,
    fake_stripe: tuple[FakeStripe, str],
    db: asyncpg.Connection,
) -> None:
    """Both the give-back's and the new acceptance's hooks were lost: the capture must
    not pay the first artisan. It releases that hold and asks for a new one."""
    fake, _ = fake_stripe
    _, payments, job, _, who = await _setup(start_app, pay_settings, fake, db)
    await payments.on_assigned(job)
    first_intent = (await _payment(db, job))["stripe_payment_intent_id"]
    fake.confirm(first_intent)
    await db.execute(
        "UPDATE interventions SET status = 'COMPLETED', artisan_id = $2 WHERE id = $1",
        job,
        who["second"],
    )
    await payments.on_completed(job)
    payment = await _payment(db, job)
    assert fake.intents[first_intent]["status"] == "canceled"
    assert fake.calls("POST", f"/v1/payment_intents/{first_intent}/capture") == []
    assert (payment["attempt"], payment["artisan_id"], payment["status"]) == (
        2,
        who["second"],
        "PENDING",
    )
    second_intent = payment["stripe_payment_intent_id"]
    assert fake.intents[second_intent]["transfer_data"] == {"destination": who["second_acct"]}

    # Once the client authorises the new hold, the reconciliation pass captures it.
    fake.confirm(second_intent)
    await db.execute(
        "UPDATE payments SET status = 'REQUIRES_CAPTURE' WHERE intervention_id = $1", job
    )
    assert await payments.reconcile(min_age_s=0) == 1
    assert fake.intents[second_intent]["status"] == "succeeded"
    assert (await _payment(db, job))["status"] == "CAPTURED"


async def test_reconcile_releases_a_given_back_hold_and_holds_again(
    start_app: StartApp,
    pay_settings: Settings,
    fake_stripe: tuple[FakeStripe, str],
    db: asyncpg.Connection,
) -> None:
    fake, _ = fake_stripe
    _, payments, job, _, who = await _setup(start_app, pay_settings, fake, db)
    await payments.on_assigned(job)
    first_intent = (await _payment(db, job))["stripe_payment_intent_id"]

    await _give_back(db, job)
    fake.fail_next = 3  # Stripe down during the give-back's hook
    await payments.on_cancelled(job)
    assert (await _payment(db, job))["status"] == "PENDING"
    assert await payments.reconcile(min_age_s=0) == 1  # SEARCHING with a live hold: release
    assert fake.intents[first_intent]["status"] == "canceled"
    assert (await _payment(db, job))["status"] == "CANCELLED"
    assert await payments.reconcile(min_age_s=0) == 0

    await _assign(db, job, who["second"])
    fake.fail_next = 3  # and down again when the second artisan accepts
    await payments.on_assigned(job)
    payment = await _payment(db, job)
    assert (payment["attempt"], payment["stripe_payment_intent_id"]) == (2, None)
    assert await payments.reconcile(min_age_s=0) == 1
    payment = await _payment(db, job)
    assert payment["stripe_payment_intent_id"] is not None and payment["attempt"] == 2
    intent = fake.intents[payment["stripe_payment_intent_id"]]
    assert intent["transfer_data"] == {"destination": who["second_acct"]}
    assert await payments.reconcile(min_age_s=0) == 0
