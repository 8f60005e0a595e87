"""Payments: price quotes, Stripe Connect onboarding, and the hold/capture/cancel/refund
hooks the intervention lifecycle calls.

The lifecycle hooks never raise into their caller and are no-ops while payments are
off (no STRIPE_API_KEY). A failed Stripe call is logged, its message kept in
`payments.last_error`, and the state left so that calling the hook again retries it
(every Stripe POST has an idempotency key derived from our ids). The hooks may be
called in any order and more than once: see dispatch/payments/holds.py.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import stripe

from core.effects import PaymentEvent, PaymentStep
from core.errors import NotFound, ServiceUnavailable
from core.settings import Settings
from dispatch.payments import client_view, repo
from dispatch.payments.common import (
    intent_status,
    platform_fee,
    quote,
    stripe_error_text,
)
from dispatch.payments.holds import HoldSteps
from dispatch.payments.stripe_client import StripeApi

__all__ = ["PaymentsService", "intent_status", "platform_fee", "quote", "stripe_error_text"]
log = logging.getLogger("zendo.payments")


class PaymentsService:
    """At app[dispatch_keys.PAYMENTS]. `api` is None when payments are off."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings, api: StripeApi | None) -> None:
        self.pool = pool
        self.settings = settings
        self.api = api
        self.holds = HoldSteps(pool, settings, api) if api is not None else None

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
                    current = await repo.artisan_account(conn, artisan_id=artisan_id)
                if current is None:  # the profile was deleted meanwhile
                    raise NotFound("No artisan profile for this user")
                account_id = current["stripe_account_id"]
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

    async def run_step(self, step: PaymentStep) -> None:
        """A post-commit step of the outbox (core.ports.PaymentSteps)."""
        match step.event:
            case PaymentEvent.ASSIGNED:
                await self.on_assigned(step.intervention_id)
            case PaymentEvent.COMPLETED:
                await self.on_completed(step.intervention_id)
            case PaymentEvent.CANCELLED:
                await self.on_cancelled(step.intervention_id)

    async def on_assigned(self, intervention_id: uuid.UUID) -> None:
        """Hold the price: a manual-capture PaymentIntent paying out to the job's current
        artisan. Called again after a give-back and a new acceptance, it releases the
        previous artisan's hold if still live and holds for the new one (a new attempt)."""
        if self.holds is not None:
            await self._guarded("authorise", intervention_id, self.holds.authorise)

    async def on_completed(self, intervention_id: uuid.UUID) -> None:
        """Capture the held payment."""
        if self.holds is not None:
            await self._guarded("capture", intervention_id, self.holds.capture)

    async def on_cancelled(self, intervention_id: uuid.UUID) -> None:
        """Release the hold, or refund (reversing the transfer and the fee) if captured.
        Call it when the job is cancelled, and when its artisan gives it back (SEARCHING)."""
        if self.holds is not None:
            await self._guarded("cancel", intervention_id, self.holds.cancel_or_refund)

    async def _guarded(
        self,
        what: str,
        intervention_id: uuid.UUID,
        step: Callable[[uuid.UUID], Awaitable[None]],
    ) -> None:
        assert self.holds is not None
        try:
            await step(intervention_id)
        except stripe.StripeError as exc:
            text = stripe_error_text(exc)
            log.warning("payment %s for %s failed: %s", what, intervention_id, text)
            await self.holds.record_error(intervention_id, text)
        except Exception:
            log.exception("payment %s for %s failed", what, intervention_id)
            await self.holds.record_error(intervention_id, f"{what} failed unexpectedly")

    # -- the client's view ------------------------------------------------------------

    async def client_payment(
        self, user_id: uuid.UUID, intervention_id: uuid.UUID
    ) -> dict[str, Any]:
        """GET /interventions/{id}/payment (see client_view.py)."""
        return await client_view.payment_for_client(self, user_id, intervention_id)

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
