"""OpenAPI fragment of the ops context."""

from __future__ import annotations

from typing import Any

from core.openapi import BEARER, SPECIALTY, TIMESTAMP, UUID, json_ok, problems, ref

_PERCENTILES: dict[str, Any] = {
    "type": "object",
    "required": ["p50", "p90"],
    "properties": {"p50": {"type": ["number", "null"]}, "p90": {"type": ["number", "null"]}},
}

SCHEMAS: dict[str, Any] = {
    "TimelineEntry": {
        "type": "object",
        "required": ["kind", "at"],
        "description": (
            "`created` and `status` come from the intervention's events (`from_status`, "
            "`to_status`, `actor_role`, `actor_id`, `data`); `offer.sent` and its outcome "
            "(`offer.accepted|declined|expired|taken|revoked`) from its offers (`offer_id`, "
            "`artisan_id`, `distance_km`, `score`; `offer.sent` also `expires_at`)."
        ),
        "properties": {
            "kind": {
                "type": "string",
                "enum": [
                    "created",
                    "status",
                    "offer.sent",
                    "offer.accepted",
                    "offer.declined",
                    "offer.expired",
                    "offer.taken",
                    "offer.revoked",
                ],
            },
            "at": TIMESTAMP,
            "from_status": {"type": ["string", "null"]},
            "to_status": {"type": "string"},
            "actor_role": {"type": "string", "enum": ["CLIENT", "ARTISAN", "ADMIN", "SYSTEM"]},
            "actor_id": {"type": ["string", "null"], "format": "uuid"},
            "data": {},
            "offer_id": UUID,
            "artisan_id": UUID,
            "distance_km": {"type": "number"},
            "score": {"type": "number"},
            "expires_at": TIMESTAMP,
        },
    },
    "Timeline": {
        "type": "object",
        "required": ["intervention", "entries"],
        "properties": {
            "intervention": {
                "type": "object",
                "required": ["id", "status", "specialty", "lat", "lon", "created_at"],
                "properties": {
                    "id": UUID,
                    "client_id": UUID,
                    "artisan_id": {"type": ["string", "null"], "format": "uuid"},
                    "specialty": SPECIALTY,
                    "status": {"type": "string"},
                    "lat": {"type": "number"},
                    "lon": {"type": "number"},
                    "created_at": TIMESTAMP,
                    "updated_at": TIMESTAMP,
                },
            },
            "entries": {"type": "array", "items": ref("TimelineEntry")},
        },
    },
    "KpiFigures": {
        "type": "object",
        "required": [
            "jobs_created",
            "jobs_assigned",
            "jobs_unfulfilled",
            "time_to_first_offer_s",
            "time_to_assign_s",
            "acceptance_rate",
            "offers_answered",
            "artisans_online",
            "artisans_busy",
        ],
        "properties": {
            "jobs_created": {"type": "integer"},
            "jobs_assigned": {"type": "integer", "description": "of those, ever ASSIGNED"},
            "jobs_unfulfilled": {"type": "integer"},
            "time_to_first_offer_s": _PERCENTILES,
            "time_to_assign_s": _PERCENTILES,
            "acceptance_rate": {
                "type": ["number", "null"],
                "description": "accepted / answered offers of those jobs (an expiry is a no)",
            },
            "offers_answered": {"type": "integer"},
            "artisans_online": {"type": "integer", "description": "VERIFIED and ONLINE now"},
            "artisans_busy": {"type": "integer", "description": "VERIFIED and BUSY now"},
        },
    },
    "Kpis": {
        "type": "object",
        "required": ["window_s", "total", "by_specialty"],
        "properties": {
            "window_s": {"type": "integer"},
            "total": ref("KpiFigures"),
            "by_specialty": {"type": "object", "additionalProperties": ref("KpiFigures")},
        },
    },
}

PATHS: dict[str, Any] = {
    "/admin/interventions/{intervention_id}/timeline": {
        "get": {
            "tags": ["admin"],
            "summary": "An intervention's dispatch log: status changes and offers, in time order",
            "operationId": "getInterventionTimeline",
            "security": BEARER,
            "parameters": [
                {"name": "intervention_id", "in": "path", "required": True, "schema": UUID}
            ],
            "responses": {"200": json_ok(ref("Timeline")), **problems(401, 403, 404)},
        }
    },
    "/admin/kpis": {
        "get": {
            "tags": ["admin"],
            "summary": "Dispatch KPIs of the jobs created in the last `window_s` seconds",
            "description": "In total and by specialty; the artisan counts are the fleet now.",
            "operationId": "getKpis",
            "security": BEARER,
            "parameters": [
                {
                    "name": "window_s",
                    "in": "query",
                    "required": False,
                    "schema": {
                        "type": "integer",
                        "minimum": 60,
                        "maximum": 604800,
                        "default": 3600,
                    },
                }
            ],
            "responses": {"200": json_ok(ref("Kpis")), **problems(401, 403, 422)},
        }
    },
}
