"""OpenAPI fragment of the payments context."""

from __future__ import annotations

from typing import Any

from core.openapi import BEARER, UUID, json_ok, problems, ref

_NULLABLE_STR: dict[str, Any] = {"type": ["string", "null"]}

SCHEMAS: dict[str, Any] = {
    "InterventionPayment": {
        "type": "object",
        "required": [
            "intervention_id",
            "status",
            "amount",
            "currency",
            "client_secret",
            "intent_status",
            "stripe_mode",
        ],
        "properties": {
            "intervention_id": UUID,
            "status": {
                "type": "string",
                "enum": [
                    "DISABLED",
                    "NONE",
                    "PENDING",
                    "REQUIRES_CAPTURE",
                    "CAPTURED",
                    "CANCELLED",
                    "REFUNDED",
                    "FAILED",
                ],
            },
            "amount": {"type": ["integer", "null"], "description": "minor units"},
            "currency": _NULLABLE_STR,
            "client_secret": {
                **_NULLABLE_STR,
                "description": "Only while status is PENDING: confirm it with Stripe.js "
                "(`stripe.confirmCardPayment`) or the mobile SDK's PaymentSheet.",
            },
            "intent_status": {
                **_NULLABLE_STR,
                "description": "Stripe's PaymentIntent status while PENDING "
                "(requires_payment_method, requires_action for 3-D Secure, processing).",
            },
            "stripe_mode": {
                "type": ["string", "null"],
                "enum": ["test", "live", None],
                "description": "Which publishable key (test or live) the app must use.",
            },
        },
    },
    "WebhookAck": {
        "type": "object",
        "required": ["received"],
        "properties": {"received": {"type": "boolean"}, "duplicate": {"type": "boolean"}},
    },
}

PATHS: dict[str, Any] = {
    "/interventions/{intervention_id}/payment": {
        "get": {
            "summary": "The payment hold of an intervention (its client only)",
            "description": (
                "On assignment the server creates a manual-capture PaymentIntent for the "
                "server's price; the client app authorises it by confirming `client_secret` "
                "with Stripe.js or the mobile SDK, then sees `REQUIRES_CAPTURE` (read fresh "
                "from Stripe while `PENDING`, so no need to wait for the webhook). It is "
                "captured on COMPLETED, released on cancellation. `NONE`: no hold for the "
                "current assignment yet (searching, given back, or being created: poll "
                "again). When payments are off (no STRIPE_API_KEY) -> 200 with status "
                "`DISABLED` and no secret, so apps skip the card step. Anyone but the "
                "intervention's client (its artisan and admins included) -> 404. 503 "
                "`payments_unavailable` when Stripe could not be read. `Cache-Control: "
                "no-store`."
            ),
            "security": BEARER,
            "parameters": [
                {
                    "name": "intervention_id",
                    "in": "path",
                    "required": True,
                    "schema": UUID,
                }
            ],
            "responses": {
                "200": json_ok(ref("InterventionPayment")),
                **problems(401, 404, 503),
            },
        }
    },
    "/webhooks/stripe": {
        "post": {
            "summary": "Stripe events (signed with STRIPE_WEBHOOK_SECRET)",
            "description": (
                "The `Stripe-Signature` header is checked on the raw body with a 300 s "
                "tolerance: missing or bad -> 400 `invalid_signature`. A replayed event id "
                "-> 200 with `duplicate: true` and no second effect. Effects are applied from "
                "a fresh read of the object, so out-of-order events converge. With a "
                "webhook secret the signature is checked first even when payments are off; "
                "then an event needing no read from Stripe is recorded (200) and one that "
                "does answers 503 `payments_disabled` (Stripe retries later), as does any "
                "event when no secret is set. 503 "
                "`payments_unavailable` when Stripe could not be reached (not recorded, so "
                "the redelivery is processed). Bodies up to 1 MiB."
            ),
            "parameters": [
                {
                    "name": "Stripe-Signature",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string"},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "responses": {
                "200": json_ok({"$ref": "#/components/schemas/WebhookAck"}),
                **problems(400, 413, 503),
            },
        }
    },
}
