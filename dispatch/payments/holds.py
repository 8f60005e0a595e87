"""The Stripe steps behind PaymentsService's lifecycle hooks: hold, capture, release,
refund.

One payments row per intervention, but a job given back by its artisan is held again
for the next one: each hold is an *attempt* (payments.attempt) with its own
PaymentIntent and idempotency keys. A row moves to a new attempt only once its hold is
released (CANCELLED/FAILED), under the intervention's row lock, so an earlier artisan's
hold is never orphaned. Results of Stripe calls are written by PaymentIntent id, so a
late answer or webhook about an earlier attempt's intent cannot touch the current one.
The hooks may run in any order (the lifecycle spawns them in the background): each
step re-reads the job and the payment and brings the latter in line with the former.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import asyncpg
import stripe

from core.db import transaction
from core.settings import Settings
from dispatch.payments import repo
from dispatch.payments.common import (
    HOLDABLE_JOB,
    PAYABLE_JOB,
    SETTLED,
    idempotency_key,
    intent_status,
    other_artisan,
    platform_fee,
    quote,
    stripe_error_text,
)
from dispatch.payments.stripe_client import StripeApi

log = logging.getLogger("zendo.payments")
# Releasing a previous artisan's hold, then holding for the current one: two rounds;
# one more in case a concurrent hook moved the row in between.
_MAX_ROUNDS = 3


class HoldSteps:
    def __init__(self, pool: asyncpg.Pool, settings: Settings, api: StripeApi) -> None:
        self.pool = pool
        self.settings = settings
        self.api = api

    async def record_error(self, intervention_id: uuid.UUID, text: str) -> None:
        try:
            async with self.pool.acquire() as conn:
                await repo.record_error(conn, intervention_id=intervention_id, error=text)
        except Exception:
            log.exception("could not record the payment error of %s", intervention_id)

    async def _state(
        self, intervention_id: uuid.UUID
    ) -> tuple[asyncpg.Record | None, asyncpg.Record | None]:
        async with self.pool.acquire() as conn:
            job = await repo.fetch_job_state(conn, intervention_id=intervention_id)
            payment = await repo.fetch_payment(conn, intervention_id=intervention_id)
        return job, payment

    async def _sync(self, intent: Any) -> str:
        status = intent_status(intent)
        async with self.pool.acquire() as conn:
            await repo.advance_status(conn, intent_id=intent.id, status=status)
        return status

    # -- hold ---------------------------------------------------------------------

    async def authorise(self, intervention_id: uuid.UUID) -> None:
        """A manual-capture PaymentIntent paying out to the job's current artisan."""
        for _ in range(_MAX_ROUNDS):
            prepared = await self._prepare_hold(intervention_id)
            if prepared is None:
                return
            job, payment = prepared
            if other_artisan(payment, job) and payment["status"] not in SETTLED:
                # The previous artisan's hold is still live (their give-back's
                # on_cancelled has not run yet, or failed): release it first.
                await self.release(intervention_id, payment)
                continue
            await self._create_hold(intervention_id, job, payment)
            return
        log.warning("payment of %s kept moving; the reconciliation pass retries", intervention_id)

    async def _prepare_hold(
        self, intervention_id: uuid.UUID
    ) -> tuple[asyncpg.Record, asyncpg.Record] | None:
        """(job, payment) with the payment row created, or moved to a new attempt when its
        hold was released while the job still needs one; None if no hold is due."""
        async with transaction(self.pool) as conn:
            job = await repo.fetch_job_for_payment(conn, intervention_id=intervention_id)
            if job is None or job["artisan_id"] is None or job["status"] not in PAYABLE_JOB:
                log.info("no payment for %s: not an assigned intervention", intervention_id)
                return None
            if job["price_amount"] is None:
                amount, currency = await quote(conn, job["specialty"])
                await repo.set_intervention_price(
                    conn, intervention_id=intervention_id, amount=amount, currency=currency
                )
            else:
                amount, currency = int(job["price_amount"]), str(job["price_currency"])
            fee = platform_fee(amount, self.settings.platform_fee_percent)
            payment = await repo.ensure_payment(
                conn,
                intervention_id=intervention_id,
                amount=amount,
                currency=currency,
                fee=fee,
                artisan_id=job["artisan_id"],
            )
            released = payment["status"] in repo.RESTARTABLE
            if released and (job["status"] in HOLDABLE_JOB or other_artisan(payment, job)):
                renewed = await repo.start_new_attempt(
                    conn,
                    intervention_id=intervention_id,
                    from_attempt=payment["attempt"],
                    artisan_id=job["artisan_id"],
                    amount=amount,
                    currency=currency,
                    fee=fee,
                )
                if renewed is not None:
                    log.info("payment of %s: attempt %s", intervention_id, renewed["attempt"])
                    payment = renewed
        return job, payment

    async def _create_hold(
        self, intervention_id: uuid.UUID, job: asyncpg.Record, payment: asyncpg.Record
    ) -> None:
        if payment["status"] != "PENDING" or payment["stripe_payment_intent_id"] is not None:
            return  # already held (or settled)
        if job["stripe_account_id"] is None:
            await self.record_error(intervention_id, "the artisan has no Stripe account yet")
            return
        attempt = int(payment["attempt"])
        intent = await self.api.create_payment_intent(
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
                    "attempt": str(attempt),
                },
            },
            idempotency_key=idempotency_key("pi-create", intervention_id, attempt),
        )
        async with transaction(self.pool) as conn:
            attached = await repo.attach_intent(
                conn, intervention_id=intervention_id, attempt=attempt, intent_id=intent.id
            )
            if attached:
                await repo.advance_status(conn, intent_id=intent.id, status=intent_status(intent))
        if not attached:
            # This attempt was cancelled or replaced while we created it: release at once.
            await self.api.cancel_payment_intent(
                intent.id, idempotency_key=idempotency_key("pi-cancel", intervention_id, attempt)
            )

    # -- capture ------------------------------------------------------------------

    async def capture(self, intervention_id: uuid.UUID) -> None:
        job, payment = await self._state(intervention_id)
        if payment is None or payment["stripe_payment_intent_id"] is None:
            log.warning("nothing to capture for %s", intervention_id)
            return
        if payment["status"] in SETTLED:
            return
        if job is not None and other_artisan(payment, job):
            # Never pay the artisan who gave the job back: release their hold and hold
            # for the one who did the work (the client confirms it; reconcile captures).
            await self.record_error(intervention_id, "the hold paid a previous artisan")
            await self.authorise(intervention_id)
            return
        intent_id = payment["stripe_payment_intent_id"]
        try:
            intent = await self.api.capture_payment_intent(
                intent_id,
                idempotency_key=idempotency_key("pi-capture", intervention_id, payment["attempt"]),
            )
        except stripe.InvalidRequestError as exc:
            # e.g. cancelled meanwhile, or never authorised by the client: trust Stripe's state.
            await self._sync(await self.api.retrieve_payment_intent(intent_id))
            await self.record_error(intervention_id, stripe_error_text(exc))
            return
        await self._sync(intent)

    # -- release / refund -----------------------------------------------------------

    async def cancel_or_refund(self, intervention_id: uuid.UUID) -> None:
        """Release the hold, or refund it if captured; not while the job is being worked
        on by the artisan this payment is for (a stale or early call: that hold stays)."""
        job, payment = await self._state(intervention_id)
        if payment is None or payment["status"] in ("CANCELLED", "REFUNDED", "FAILED"):
            return
        if (
            job is not None
            and job["status"] in HOLDABLE_JOB
            and job["artisan_id"] is not None
            and not other_artisan(payment, job)
        ):
            log.info("payment of %s kept: the job is active with its artisan", intervention_id)
            return
        if payment["status"] != "CAPTURED":
            if await self.release(intervention_id, payment) != "CAPTURED":
                return
            _, payment = await self._state(intervention_id)  # captured before we could cancel
            if payment is None or payment["stripe_payment_intent_id"] is None:
                return
        intent_id = str(payment["stripe_payment_intent_id"])
        await self._refund(intervention_id, intent_id, int(payment["attempt"]))

    async def release(self, intervention_id: uuid.UUID, payment: asyncpg.Record) -> str:
        """Cancel this attempt's hold; the resulting status (CAPTURED if it was too late)."""
        attempt = int(payment["attempt"])
        intent_id = payment["stripe_payment_intent_id"]
        if intent_id is None:
            async with self.pool.acquire() as conn:
                moved = await repo.advance_status(
                    conn, intervention_id=intervention_id, attempt=attempt, status="CANCELLED"
                )
                current = await repo.fetch_payment(conn, intervention_id=intervention_id)
            if moved or current is None or current["attempt"] != attempt:
                return "CANCELLED"
            intent_id = current["stripe_payment_intent_id"]  # attached meanwhile
            if intent_id is None:
                return str(current["status"])
        try:
            intent = await self.api.cancel_payment_intent(
                intent_id, idempotency_key=idempotency_key("pi-cancel", intervention_id, attempt)
            )
        except stripe.InvalidRequestError:
            intent = await self.api.retrieve_payment_intent(intent_id)
        return await self._sync(intent)

    async def _refund(self, intervention_id: uuid.UUID, intent_id: str, attempt: int) -> None:
        try:
            refund = await self.api.refund_payment_intent(
                intent_id, idempotency_key=idempotency_key("refund", intervention_id, attempt)
            )
            refund_id: str | None = refund.id
        except stripe.InvalidRequestError as exc:
            if getattr(exc, "code", None) != "charge_already_refunded":
                raise
            refund_id = None
        async with self.pool.acquire() as conn:
            await repo.advance_status(
                conn, intent_id=intent_id, status="REFUNDED", refund_id=refund_id
            )
