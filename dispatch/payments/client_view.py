"""GET /interventions/{id}/payment: what the client app needs to authorise the hold.

The PaymentIntent is created by the server (on assignment) in
`requires_payment_method`; the client app confirms it with Stripe.js or the mobile SDK
using its `client_secret`. The secret is not stored by us: it is read from Stripe
while the hold awaits the card (which also refreshes our status without waiting for
the webhook), and only ever shown to the intervention's client.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

import stripe

from core.errors import NotFound, ServiceUnavailable
from dispatch.payments import repo
from dispatch.payments.common import HOLDABLE_JOB, intent_status, other_artisan, stripe_error_text

if TYPE_CHECKING:
    from dispatch.payments.service import PaymentsService

log = logging.getLogger("zendo.payments")


def _public_status(job: Any, payment: Any) -> str:
    """NONE while there is no hold for the job's current assignment: not assigned yet
    (or given back), or the hold for a new artisan is being made."""
    if payment is None or job["status"] == "SEARCHING":
        return "NONE"
    if job["status"] in HOLDABLE_JOB and (
        other_artisan(payment, job) or payment["status"] in repo.RESTARTABLE
    ):
        return "NONE"
    if payment["status"] == "PENDING" and payment["stripe_payment_intent_id"] is None:
        return "NONE"
    return str(payment["status"])


async def payment_for_client(
    service: PaymentsService, user_id: uuid.UUID, intervention_id: uuid.UUID
) -> dict[str, Any]:
    async with service.pool.acquire() as conn:
        job = await repo.fetch_job_state(conn, intervention_id=intervention_id)
        if job is None or job["client_id"] != user_id:
            raise NotFound("No such intervention")
        payment = await repo.fetch_payment(conn, intervention_id=intervention_id)
    view: dict[str, Any] = {
        "intervention_id": str(intervention_id),
        "status": "DISABLED",
        "amount": job["price_amount"],
        "currency": job["price_currency"],
        "client_secret": None,
        "intent_status": None,
        "stripe_mode": None,
    }
    if service.api is None:
        return view
    view["stripe_mode"] = "live" if "_live_" in service.settings.stripe_api_key else "test"
    status = _public_status(job, payment)
    view["status"] = status
    if status == "NONE" or payment is None:
        return view
    view["amount"], view["currency"] = payment["amount"], payment["currency"]
    if status != "PENDING":
        return view
    intent_id = str(payment["stripe_payment_intent_id"])
    try:
        intent = await service.api.retrieve_payment_intent(intent_id)
    except stripe.StripeError as exc:
        log.warning("reading %s failed: %s", intent_id, stripe_error_text(exc))
        raise ServiceUnavailable(
            "The payment provider is unavailable", code="payments_unavailable"
        ) from exc
    fresh = intent_status(intent)
    async with service.pool.acquire() as conn:
        await repo.advance_status(conn, intent_id=intent_id, status=fresh)
    view["status"] = fresh
    view["intent_status"] = str(intent.status)
    if fresh == "PENDING":
        view["client_secret"] = intent.client_secret
    return view
