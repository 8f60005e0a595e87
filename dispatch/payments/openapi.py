"""OpenAPI fragment of the payments context."""

from __future__ import annotations

from typing import Any

from dispatch.openapi.common import json_ok, problems

SCHEMAS: dict[str, Any] = {
    "WebhookAck": {
        "type": "object",
        "required": ["received"],
        "properties": {"received": {"type": "boolean"}, "duplicate": {"type": "boolean"}},
    },
}

PATHS: dict[str, Any] = {
    "/webhooks/stripe": {
        "post": {
            "summary": "Stripe events (signed with STRIPE_WEBHOOK_SECRET)",
            "description": (
                "The `Stripe-Signature` header is checked on the raw body with a 300 s "
                "tolerance: missing or bad -> 400 `invalid_signature`. A replayed event id "
                "-> 200 with `duplicate: true` and no second effect. Effects are applied from "
                "a fresh read of the object, so out-of-order events converge. 503 "
                "`payments_disabled` when payments are off (Stripe retries later), 503 "
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
