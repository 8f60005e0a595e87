"""OpenAPI fragment of the offers context (CONTRACT §4)."""

from __future__ import annotations

from typing import Any

from core.openapi import BEARER, UUID, json_ok, problems, ref

_OFFER_ID: dict[str, Any] = {
    "name": "offer_id",
    "in": "path",
    "required": True,
    "description": "Offer id, from the `offer` WebSocket frame (a malformed id is a 404).",
    "schema": UUID,
}

SCHEMAS: dict[str, Any] = {}

PATHS: dict[str, Any] = {
    "/offers/{offer_id}/accept": {
        "post": {
            "tags": ["offers"],
            "summary": "Accept an offer (ARTISAN; same as the `offer.accept` frame)",
            "description": (
                "Atomic: the first accept of a job wins. 409 `offer_expired` after the "
                "offer's `expires_at` (or once declined), 409 `offer_taken` when another "
                "artisan got the job, it was cancelled or the offer was revoked, 409 "
                "`artisan_busy` when you already hold a job, 409 `artisan_not_verified` "
                "when your account is no longer verified; someone else's offer is a 404. Accepting makes you "
                "BUSY; other pending offers of the job get `offer.result` `taken`. "
                "Repeating a successful accept returns the job again. Under "
                "`ZENDO_DISPATCH_POLICY=best_accept` an in-time accept is held: the job "
                "comes back still `SEARCHING`, and when the accept window closes the "
                "best-scored holder gets it (`offer.result` `accepted`; the others `taken`)."
            ),
            "security": BEARER,
            "parameters": [_OFFER_ID],
            "responses": {
                "200": json_ok(ref("Intervention"), "Assigned to you (best_accept: held)"),
                **problems(401, 403, 404, 409),
            },
        }
    },
    "/offers/{offer_id}/decline": {
        "post": {
            "tags": ["offers"],
            "summary": "Decline an offer (ARTISAN; same as the `offer.decline` frame)",
            "description": "The job is offered to the next artisan at once. Declining an "
            "offer that is no longer pending is a no-op (204); one you accepted is 409 "
            "`offer_accepted` (cancel the intervention instead).",
            "security": BEARER,
            "parameters": [_OFFER_ID],
            "responses": {"204": {"description": "Declined"}, **problems(401, 403, 404, 409)},
        }
    },
}
