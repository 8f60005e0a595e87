"""Stripe webhooks: verified on the raw body, deduplicated by event id in the same
transaction as their effects, and applied from a fresh read of the object (events
can arrive late, twice, or out of order; the object's current state cannot)."""

from __future__ import annotations

import logging
import re
from typing import Any

import asyncpg
import stripe

from core.db import transaction
from core.errors import BadRequest, ServiceUnavailable
from dispatch.payments import repo
from dispatch.payments.common import intent_status, stripe_error_text
from dispatch.payments.stripe_client import StripeApi

log = logging.getLogger("zendo.payments.webhooks")
# Stripe ids are short ASCII words (evt_..., pi_..., acct_...). Anything else is not
# looked up: an empty or odd id could turn a retrieve into another request (a list).
_ID_RE = re.compile(r"^[A-Za-z0-9_]{1,255}$")
_EVENT_TYPE_RE = re.compile(r"^[a-z0-9_.]{1,100}$")
# Stripe's own tolerance for a signature's timestamp (CONTRACT §4: 300 s).
_TOLERANCE_S = 300
_KINDS = (("account.", "account"), ("payment_intent.", "payment_intent"), ("charge.", "charge"))


def _kind(event_type: str) -> str | None:
    """The object type an event we act on is about; None for the others."""
    return next((kind for prefix, kind in _KINDS if event_type.startswith(prefix)), None)


async def _fresh_object(api: StripeApi, kind: str, object_id: str) -> Any | None:
    """The event's object as Stripe has it now; None if Stripe will not show it to us
    (unknown id, another platform's object): such an event is acknowledged and dropped,
    since redelivering it would fail the same way. Outages raise (the event is retried)."""
    try:
        if kind == "account":
            obj = await api.retrieve_account(object_id)
        elif kind == "payment_intent":
            obj = await api.retrieve_payment_intent(object_id)
        else:
            obj = await api.retrieve_charge(object_id)
    except (stripe.InvalidRequestError, stripe.PermissionError) as exc:
        log.warning("webhook: %s %s cannot be read: %s", kind, object_id, stripe_error_text(exc))
        return None
    if getattr(obj, "object", None) != kind or getattr(obj, "id", None) != object_id:
        log.warning("webhook: %s %s came back as something else", kind, object_id)
        return None
    return obj


async def _apply(conn: asyncpg.Connection, kind: str, obj: Any) -> None:
    """Objects we hold no row for (another platform's account, an intent we did not
    create or an earlier attempt's) match no row: nothing happens."""
    if kind == "account":
        await repo.set_payouts_enabled(
            conn, account_id=obj.id, enabled=bool(getattr(obj, "payouts_enabled", False))
        )
    elif kind == "payment_intent":
        await repo.advance_status(conn, intent_id=obj.id, status=intent_status(obj))
    elif kind == "charge" and getattr(obj, "refunded", False):
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
    """With a webhook secret the signature is checked first, whether payments are on or
    not (400 when bad). With payments off, a valid event that needs no re-read from
    Stripe is recorded (200); one that does answers 503 `payments_disabled`, and Stripe
    delivers it again later."""
    if not secret:
        raise ServiceUnavailable("Payments are disabled", code="payments_disabled")
    if not signature:
        raise BadRequest("Missing Stripe-Signature header", code="invalid_signature")
    try:
        text = payload.decode("utf-8")
        verified = (
            api.construct_event(text, signature, secret)
            if api is not None
            else stripe.Webhook.construct_event(text, signature, secret, tolerance=_TOLERANCE_S)
        )
        event: dict[str, Any] = verified.to_dict()
    except stripe.SignatureVerificationError as exc:
        raise BadRequest("Invalid Stripe signature", code="invalid_signature") from exc
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
        # Signed but not an event: not UTF-8 or JSON, a JSON array or scalar (the SDK
        # fails on .get), or nested too deep for the decoder.
        raise BadRequest("Malformed event payload", code="malformed_event") from exc
    event_id, event_type = event.get("id"), event.get("type")
    if not (isinstance(event_id, str) and _ID_RE.match(event_id)):
        raise BadRequest("The event has no valid id", code="malformed_event")
    if not (isinstance(event_type, str) and _EVENT_TYPE_RE.match(event_type)):
        raise BadRequest("The event has no valid type", code="malformed_event")
    data = event.get("data")
    data_object = data.get("object") if isinstance(data, dict) else None
    object_id = data_object.get("id") if isinstance(data_object, dict) else None
    kind = _kind(event_type)
    if not (isinstance(object_id, str) and _ID_RE.match(object_id)):
        if kind is not None:
            log.warning("webhook %s (%s): no usable object id", event_id, event_type)
        object_id = None

    async with pool.acquire() as conn:
        if await repo.event_seen(conn, event_id=event_id):
            return {"received": True, "duplicate": True}
    fresh = None
    if kind is not None and object_id is not None:
        if api is None:  # acting on it needs Stripe's current object
            raise ServiceUnavailable("Payments are disabled", code="payments_disabled")
        try:
            fresh = await _fresh_object(api, kind, object_id)
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
        if fresh is not None and kind is not None:
            await _apply(conn, kind, fresh)
    return {"received": True, "duplicate": False}
