"""Payments: price quotes, Stripe Connect onboarding, and the hold/capture/cancel/refund
hooks the intervention lifecycle calls.

The lifecycle hooks never raise into their caller and are no-ops while payments are
off (no STRIPE_API_KEY). A failed Stripe call is logged, its message kept in
`payments.last_error`, and the state left so that calling the hook again retries it
(every Stripe POST has an idempotency key derived from our ids).
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import asyncpg
import stripe

from dispatch.db import transaction
from dispatch.errors import FieldError, NotFound, ServiceUnavailable, ValidationFailed
from dispatch.payments import repo
from dispatch.payments.stripe_client import StripeApi
from dispatch.settings import Settings

log = logging.getLogger("zendo.payments")
_ACTIVE_JOB = ("ASSIGNED", "EN_ROUTE", "ARRIVED", "IN_PROGRESS", "COMPLETED")
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
    return _INTENT_STATUS.get(str(intent.status), "PENDING")


def stripe_error_text(exc: stripe.StripeError) -> str:
    code = getattr(exc, "code", None)
    return f"{type(exc).__name__}: {code or ''} {exc.user_message or str(exc)}".strip()


class PaymentsService:
    """At app[appkeys.PAYMENTS]. `api` is None when payments are off."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings, api: StripeApi | None) -> None:
        self.pool = pool
        self.settings = settings
        self.api = api

    @property
    def enabled(self) -> bool:
        return self.api is not None

    # -- onboarding ---------------------------------------------------------------

    async def onboarding_link(self, artisan_id: uuid.UUID) -> dict[str, Any]:
        """An Express account (created once) and a fresh account link for it."""
        if self.api is None:
            raise ServiceUnavailable("Payments are disabled", code="payments_disabled")
        async with self.pool.acquire() as conn:
            row = await repo.artisan_account(conn, artisan_id=artisan_id)
        if row is None:
            raise NotFound("No artisan profile for this user")
        base = self.settings.public_base_url.rstrip("/")
        try:
            account_id = row["stripe_account_id"]
            if account_id is None:
                account = await self.api.create_account(
                    {
                        "type": "express",
                        "country": "FR",
                        "email": row["email"],
                        "capabilities": {"transfers": {"requested": True}},
                        "metadata": {"artisan_id": str(artisan_id)},
                    },
                    idempotency_key=f"acct-create-{artisan_id}",
                )
                async with self.pool.acquire() as conn:
                    await repo.set_stripe_account(
                        conn, artisan_id=artisan_id, account_id=account.id
                    )
                    account_id = (await repo.artisan_account(conn, artisan_id=artisan_id))[
                        "stripe_account_id"
                    ]
            # Links are single-use: one key per artisan per minute lets a retry reuse one.
            link = await self.api.create_account_link(
                {
                    "account": account_id,
                    "type": "account_onboarding",
                    "refresh_url": f"{base}/payouts/onboarding/refresh",
                    "return_url": f"{base}/payouts/onboarding/return",
                },
                idempotency_key=f"acct-link-{artisan_id}-{int(time.time() // 60)}",
            )
        except stripe.StripeError as exc:
            log.warning("onboarding for %s failed: %s", artisan_id, stripe_error_text(exc))
            raise ServiceUnavailable(
                "The payment provider is unavailable", code="payments_unavailable"
            ) from exc
        return {"url": link.url, "expires_at": datetime.fromtimestamp(link.expires_at, UTC)}

    # -- lifecycle hooks --------------------------------------------------------------

    async def on_assigned(self, intervention_id: uuid.UUID) -> None:
        """Hold the price: a manual-capture PaymentIntent paying out to the artisan."""
        await self._guarded("authorise", intervention_id, self._authorise)

    async def on_completed(self, intervention_id: uuid.UUID) -> None:
        """Capture the held payment."""
        await self._guarded("capture", intervention_id, self._capture)

    async def on_cancelled(self, intervention_id: uuid.UUID) -> None:
        """Release the hold, or refund (reversing the transfer and the fee) if captured."""
        await self._guarded("cancel", intervention_id, self._cancel_or_refund)

    async def _guarded(self, what: str, intervention_id: uuid.UUID, step: Any) -> None:
        if self.api is None:
            return
        try:
            await step(self.api, intervention_id)
        except stripe.StripeError as exc:
            text = stripe_error_text(exc)
            log.warning("payment %s for %s failed: %s", what, intervention_id, text)
            await self._record_error(intervention_id, text)
        except Exception:
            log.exception("payment %s for %s failed", what, intervention_id)
            await self._record_error(intervention_id, f"{what} failed unexpectedly")

    async def _record_error(self, intervention_id: uuid.UUID, text: str) -> None:
        try:
            async with self.pool.acquire() as conn:
                await repo.record_error(conn, intervention_id=intervention_id, error=text)
        except Exception:
            log.exception("could not record the payment error of %s", intervention_id)

    async def _authorise(self, api: StripeApi, intervention_id: uuid.UUID) -> None:
        async with transaction(self.pool) as conn:
            job = await repo.fetch_job_for_payment(conn, intervention_id=intervention_id)
            if job is None or job["artisan_id"] is None or job["status"] not in _ACTIVE_JOB:
                log.info("no payment for %s: not an assigned intervention", intervention_id)
                return
            if job["price_amount"] is None:
                amount, currency = await quote(conn, job["specialty"])
                await repo.set_intervention_price(
                    conn, intervention_id=intervention_id, amount=amount, currency=currency
                )
            else:
                amount, currency = int(job["price_amount"]), str(job["price_currency"])
            fee = platform_fee(amount, self.settings.platform_fee_percent)
            payment = await repo.ensure_payment(
                conn, intervention_id=intervention_id, amount=amount, currency=currency, fee=fee
            )
        if payment["status"] != "PENDING" or payment["stripe_payment_intent_id"] is not None:
            return  # already held (or settled)
        if job["stripe_account_id"] is None:
            await self._record_error(intervention_id, "the artisan has no Stripe account yet")
            return
        intent = await api.create_payment_intent(
            {
                "amount": payment["amount"],
                "currency": payment["currency"].lower(),
                "capture_method": "manual",
                "application_fee_amount": payment["application_fee_amount"],
                "transfer_data": {"destination": job["stripe_account_id"]},
                "metadata": {
                    "intervention_id": str(intervention_id),
                    "client_id": str(job["client_id"]),
                    "artisan_id": str(job["artisan_id"]),
                },
            },
            idempotency_key=f"pi-create-{intervention_id}",
        )
        async with transaction(self.pool) as conn:
            attached = await repo.attach_intent(
                conn, intervention_id=intervention_id, intent_id=intent.id
            )
            if attached:
                await repo.advance_status(
                    conn, intervention_id=intervention_id, status=intent_status(intent)
                )
        if not attached:
            # Cancelled while we were creating it: release the hold at once.
            await api.cancel_payment_intent(
                intent.id, idempotency_key=f"pi-cancel-{intervention_id}"
            )

    async def _payment(self, intervention_id: uuid.UUID) -> asyncpg.Record | None:
        async with self.pool.acquire() as conn:
            return await repo.fetch_payment(conn, intervention_id=intervention_id)

    async def _sync_intent(self, intervention_id: uuid.UUID, intent: Any) -> str:
        status = intent_status(intent)
        async with self.pool.acquire() as conn:
            await repo.advance_status(conn, intervention_id=intervention_id, status=status)
        return status

    async def _capture(self, api: StripeApi, intervention_id: uuid.UUID) -> None:
        payment = await self._payment(intervention_id)
        if payment is None or payment["stripe_payment_intent_id"] is None:
            log.warning("nothing to capture for %s", intervention_id)
            return
        if payment["status"] in ("CAPTURED", "CANCELLED", "REFUNDED", "FAILED"):
            return
        intent_id = payment["stripe_payment_intent_id"]
        try:
            intent = await api.capture_payment_intent(
                intent_id, idempotency_key=f"pi-capture-{intervention_id}"
            )
        except stripe.InvalidRequestError as exc:
            # e.g. cancelled meanwhile, or never authorised by the client: trust Stripe's state.
            intent = await api.retrieve_payment_intent(intent_id)
            await self._sync_intent(intervention_id, intent)
            await self._record_error(intervention_id, stripe_error_text(exc))
            return
        await self._sync_intent(intervention_id, intent)

    async def _cancel_or_refund(self, api: StripeApi, intervention_id: uuid.UUID) -> None:
        payment = await self._payment(intervention_id)
        if payment is None or payment["status"] in ("CANCELLED", "REFUNDED", "FAILED"):
            return
        intent_id = payment["stripe_payment_intent_id"]
        if intent_id is None:
            async with self.pool.acquire() as conn:
                moved = await repo.advance_status(
                    conn, intervention_id=intervention_id, status="CANCELLED"
                )
            if moved:
                return
            payment = await self._payment(intervention_id)
            assert payment is not None
            intent_id = payment["stripe_payment_intent_id"]
            if intent_id is None:
                return
        if payment["status"] != "CAPTURED":
            try:
                intent = await api.cancel_payment_intent(
                    intent_id, idempotency_key=f"pi-cancel-{intervention_id}"
                )
            except stripe.InvalidRequestError:
                intent = await api.retrieve_payment_intent(intent_id)
            if await self._sync_intent(intervention_id, intent) != "CAPTURED":
                return
        await self._refund(api, intervention_id, intent_id)

    async def _refund(self, api: StripeApi, intervention_id: uuid.UUID, intent_id: str) -> None:
        try:
            refund = await api.refund_payment_intent(
                intent_id, idempotency_key=f"refund-{intervention_id}"
            )
            refund_id: str | None = refund.id
        except stripe.InvalidRequestError as exc:
            if getattr(exc, "code", None) != "charge_already_refunded":
                raise
            refund_id = None
        async with self.pool.acquire() as conn:
            await repo.advance_status(
                conn, intervention_id=intervention_id, status="REFUNDED", refund_id=refund_id
            )

    # -- reconciliation ---------------------------------------------------------------

    async def reconcile(self, *, min_age_s: float = 30.0, limit: int = 100) -> int:
        """Re-run the hooks for interventions whose payment step did not finish (Stripe
        down, process stopped mid-call). Safe to repeat: every step is idempotent."""
        if self.api is None:
            return 0
        async with self.pool.acquire() as conn:
            rows = await repo.unfinished_payment_steps(conn, min_age_s=min_age_s, limit=limit)
        hooks = {
            "assign": self.on_assigned,
            "capture": self.on_completed,
            "cancel": self.on_cancelled,
        }
        for row in rows:
            await hooks[row["step"]](row["id"])
        return len(rows)
