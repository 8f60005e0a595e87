"""Stripe webhooks: verified on the raw body, deduplicated by event id in the same
transaction as their effects, and applied from a fresh read of the object (events
can arrive late, twice, or out of order; the object's current state cannot)."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import stripe

from dispatch.db import transaction
from dispatch.errors import BadRequest, ServiceUnavailable
from dispatch.payments import repo
from dispatch.payments.service import intent_status, stripe_error_text
from dispatch.payments.stripe_client import StripeApi

log = logging.getLogger("zendo.payments.webhooks")


async def _fresh_object(api: StripeApi, event_type: str, object_id: str) -> Any | None:
    """The event's object as Stripe has it now, or None for events we do not act on."""
    try:
        if event_type.startswith("account."):
            return await api.retrieve_account(object_id)
        if event_type.startswith("payment_intent."):
            return await api.retrieve_payment_intent(object_id)
        if event_type.startswith("charge."):
            return await api.retrieve_charge(object_id)
    except stripe.InvalidRequestError as exc:
        if getattr(exc, "http_status", None) == 404:
            log.warning("webhook %s: %s no longer exists", event_type, object_id)
            return None
        raise
    return None


async def _apply(conn: asyncpg.Connection, event_type: str, obj: Any) -> None:
    if event_type.startswith("account."):
        await repo.set_payouts_enabled(
            conn, account_id=obj.id, enabled=bool(getattr(obj, "payouts_enabled", False))
        )
    elif event_type.startswith("payment_intent."):
        await repo.advance_status(conn, intent_id=obj.id, status=intent_status(obj))
    elif event_type.startswith("charge.") and getattr(obj, "refunded", False):
        intent_id = getattr(obj, "payment_intent", None)
        if isinstance(intent_id, str):
            await repo.advance_status(conn, intent_id=intent_id, status="REFUNDED")


async def handle_webhook(
    pool: asyncpg.Pool,
    api: StripeApi | None,
    secret: str,
    payload: bytes,
    signature: str | None,
) -> dict[str, Any]:
    if api is None or not secret:
        raise ServiceUnavailable("Payments are disabled", code="payments_disabled")
    if not signature:
        raise BadRequest("Missing Stripe-Signature header", code="invalid_signature")
    try:
        event = api.construct_event(payload.decode("utf-8"), signature, secret)
    except stripe.SignatureVerificationError as exc:
        raise BadRequest("Invalid Stripe signature", code="invalid_signature") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("Malformed event payload", code="malformed_event") from exc
    event_id, event_type = str(event.id), str(event.type)
    data_object = getattr(getattr(event, "data", None), "object", None)
    object_id = getattr(data_object, "id", None)

    async with pool.acquire() as conn:
        if await repo.event_seen(conn, event_id=event_id):
            return {"received": True, "duplicate": True}
    fresh = None
    if isinstance(object_id, str):
        try:
            fresh = await _fresh_object(api, event_type, object_id)
        except stripe.StripeError as exc:
            # Not recorded as processed: Stripe redelivers it later.
            log.warning(
                "webhook %s: re-reading %s failed: %s", event_id, object_id, stripe_error_text(exc)
            )
            raise ServiceUnavailable(
                "The payment provider is unavailable", code="payments_unavailable"
            ) from exc
    async with transaction(pool) as conn:
        if not await repo.mark_event_processed(conn, event_id=event_id, event_type=event_type):
            return {"received": True, "duplicate": True}
        if fresh is not None:
            await _apply(conn, event_type, fresh)
    return {"received": True, "duplicate": False}
