"""Small pieces shared by the payments modules: price, fee, Stripe status mapping,
idempotency keys."""

from __future__ import annotations

import uuid
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import asyncpg
import stripe

from core.errors import FieldError, ValidationFailed
from dispatch.payments import repo

# A job being worked on: its payment should be a live hold for its current artisan.
HOLDABLE_JOB = ("ASSIGNED", "EN_ROUTE", "ARRIVED", "IN_PROGRESS")
# Jobs that may get a PaymentIntent (a late assignment hook may find one COMPLETED).
PAYABLE_JOB = (*HOLDABLE_JOB, "COMPLETED")
SETTLED = ("CAPTURED", "CANCELLED", "REFUNDED", "FAILED")
# PaymentIntent.status -> payments.status
_INTENT_STATUS = {
    "requires_payment_method": "PENDING",
    "requires_confirmation": "PENDING",
    "requires_action": "PENDING",
    "processing": "PENDING",
    "requires_capture": "REQUIRES_CAPTURE",
    "succeeded": "CAPTURED",
    "canceled": "CANCELLED",
}


async def quote(conn: asyncpg.Connection, specialty: str) -> tuple[int, str]:
    """The server's price for a specialty: (amount in minor units, ISO currency).

    Never take a price from the client; call this when creating an intervention.
    """
    row = await repo.fetch_price(conn, specialty=specialty)
    if row is None:
        raise ValidationFailed([FieldError("specialty", "no price for this specialty")])
    return int(row["amount"]), str(row["currency"])


def platform_fee(amount: int, percent: float) -> int:
    fee = (Decimal(amount) * Decimal(str(percent)) / 100).quantize(Decimal(1), ROUND_HALF_UP)
    return min(amount, max(0, int(fee)))


def intent_status(intent: Any) -> str:
    return _INTENT_STATUS.get(str(getattr(intent, "status", "")), "PENDING")


def stripe_error_text(exc: stripe.StripeError) -> str:
    code = getattr(exc, "code", None)
    return f"{type(exc).__name__}: {code or ''} {exc.user_message or str(exc)}".strip()


def idempotency_key(step: str, intervention_id: uuid.UUID, attempt: int) -> str:
    """`pi-create-<id>` for the first hold, `pi-create-<id>-<attempt>` for the next ones:
    a new artisan's hold must not replay the previous artisan's PaymentIntent."""
    base = f"{step}-{intervention_id}"
    return base if attempt == 1 else f"{base}-{attempt}"


def other_artisan(payment: Any, job: Any) -> bool:
    """The payment pays out to someone other than the job's current artisan."""
    return (
        payment["artisan_id"] is not None
        and job["artisan_id"] is not None
        and payment["artisan_id"] != job["artisan_id"]
    )
