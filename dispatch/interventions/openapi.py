"""OpenAPI fragment of the interventions context (CONTRACT §4) and GET /admin/match."""

from __future__ import annotations

from typing import Any

from core.openapi import (
    BEARER,
    SPECIALTY,
    TIMESTAMP,
    UUID,
    json_body,
    json_ok,
    problems,
    ref,
)
from dispatch.interventions.statemachine import STATUSES

_ID_PARAM: dict[str, Any] = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "Intervention id (a malformed id is a 404).",
    "schema": UUID,
}
_STATUS: dict[str, Any] = {"type": "string", "enum": list(STATUSES)}
_LAT: dict[str, Any] = {"type": "number", "minimum": -90, "maximum": 90}
_LON: dict[str, Any] = {"type": "number", "minimum": -180, "maximum": 180}

SCHEMAS: dict[str, Any] = {
    "Intervention": {
        "type": "object",
        "required": [
            "id",
            "client_id",
            "artisan_id",
            "specialty",
            "lat",
            "lon",
            "address",
            "description",
            "status",
            "price",
            "created_at",
            "updated_at",
        ],
        "properties": {
            "id": UUID,
            "client_id": UUID,
            "artisan_id": {"oneOf": [UUID, {"type": "null"}]},
            "specialty": SPECIALTY,
            "lat": _LAT,
            "lon": _LON,
            "address": {"type": ["string", "null"]},
            "description": {"type": ["string", "null"]},
            "status": _STATUS,
            "start_code": {
                "type": "string",
                "pattern": "^[0-9]{4}$",
                "description": "Only in the client's view: the client gives it to the "
                "artisan on site, who needs it to start the work (IN_PROGRESS).",
            },
            "price": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["amount", "currency"],
                        "properties": {
                            "amount": {"type": "integer", "description": "minor units"},
                            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                        },
                    },
                    {"type": "null"},
                ]
            },
            "created_at": TIMESTAMP,
            "updated_at": TIMESTAMP,
        },
    },
    "CreateIntervention": {
        "type": "object",
        "additionalProperties": False,
        "required": ["specialty", "lat", "lon"],
        "properties": {
            "specialty": SPECIALTY,
            "lat": _LAT,
            "lon": _LON,
            "address": {"type": ["string", "null"], "maxLength": 500},
            "description": {"type": ["string", "null"], "maxLength": 2000},
        },
    },
    "StatusChange": {
        "type": "object",
        "additionalProperties": False,
        "required": ["status"],
        "properties": {
            "status": {
                "type": "string",
                "enum": ["EN_ROUTE", "ARRIVED", "IN_PROGRESS", "COMPLETED"],
            },
            "start_code": {"type": "string", "pattern": "^[0-9]{4}$"},
        },
    },
    "RatingRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["stars"],
        "properties": {
            "stars": {"type": "integer", "minimum": 1, "maximum": 5},
            "comment": {"type": ["string", "null"], "maxLength": 2000},
        },
    },
    "Rating": {
        "type": "object",
        "required": ["intervention_id", "artisan_id", "stars", "comment", "artisan_rating"],
        "properties": {
            "intervention_id": UUID,
            "artisan_id": UUID,
            "stars": {"type": "integer", "minimum": 1, "maximum": 5},
            "comment": {"type": ["string", "null"]},
            "artisan_rating": {
                "type": "number",
                "description": "The artisan's new average rating (every rating received).",
            },
        },
    },
    "MatchCandidate": {
        "type": "object",
        "required": ["artisan_id", "distance_km", "score"],
        "properties": {
            "artisan_id": UUID,
            "distance_km": {"type": "number", "minimum": 0},
            "score": {"type": "number", "description": "Lower is better (CONTRACT §7)."},
        },
    },
}

_JOB = json_ok(ref("Intervention"))

PATHS: dict[str, Any] = {
    "/interventions": {
        "post": {
            "tags": ["interventions"],
            "summary": "Request an intervention (CLIENT)",
            "description": (
                "Creates a SEARCHING intervention priced by the server and dispatches it at "
                "once: the best-ranked eligible artisan gets an `offer` frame, the next one "
                "on decline or timeout. When nobody is left within ZENDO_MATCH_RADIUS_KM the "
                "search widens once to twice that radius; when nobody is left there either "
                "the intervention becomes UNFULFILLED (the client gets an "
                "`intervention.status` frame). With `Idempotency-Key`, a replay by the same "
                "client returns the first intervention with 200 and dispatches nothing more "
                "(whatever the replayed body holds). Abuse limits (CONTRACT §8a): at most "
                "`ZENDO_MAX_OPEN_JOBS_PER_CLIENT` (3) interventions not yet COMPLETED, "
                "CANCELLED or UNFULFILLED, else 429 `too_many_open_jobs`; at most "
                "`ZENDO_JOBS_PER_MIN_PER_CLIENT` (10) requests in any 60 s, else 429 "
                "`rate_limited`; both with `Retry-After`. 422 `out_of_area` outside the "
                "served polygons."
            ),
            "security": BEARER,
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "1 to 255 printable ASCII characters, unique per client.",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                }
            ],
            "requestBody": json_body(ref("CreateIntervention")),
            "responses": {
                "201": json_ok(ref("Intervention"), "Created, status SEARCHING"),
                "200": json_ok(ref("Intervention"), "Idempotent replay: the first one"),
                **problems(400, 401, 403, 409, 413, 422, 429, 503),
            },
        },
        "get": {
            "tags": ["interventions"],
            "summary": "My interventions, newest first",
            "description": "A client's requests, or the jobs assigned to an artisan; "
            "admins see everyone's.",
            "security": BEARER,
            "parameters": [
                {"name": "status", "in": "query", "required": False, "schema": _STATUS},
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50},
                },
            ],
            "responses": {
                "200": json_ok({"type": "array", "items": ref("Intervention")}),
                **problems(401, 422),
            },
        },
    },
    "/interventions/{id}": {
        "get": {
            "tags": ["interventions"],
            "summary": "One intervention (its client, its artisan or an admin)",
            "security": BEARER,
            "parameters": [_ID_PARAM],
            "responses": {"200": _JOB, **problems(401, 404)},
        }
    },
    "/interventions/{id}/cancel": {
        "post": {
            "tags": ["interventions"],
            "summary": "Cancel (client/admin) or withdraw (assigned artisan)",
            "description": (
                "The client (or an admin) cancels before IN_PROGRESS: CANCELLED, pending "
                "offers revoked, the artisan freed. The assigned artisan who cancels before "
                "IN_PROGRESS withdraws: the job goes back to SEARCHING without them and is "
                "offered to the next artisan. Anything else is 409 `illegal_transition`."
            ),
            "security": BEARER,
            "parameters": [_ID_PARAM],
            "responses": {"200": _JOB, **problems(401, 404, 409)},
        }
    },
    "/interventions/{id}/status": {
        "post": {
            "tags": ["interventions"],
            "summary": "Move the job along (assigned ARTISAN)",
            "description": (
                "ASSIGNED → EN_ROUTE → ARRIVED → IN_PROGRESS → COMPLETED, one step at a time. "
                "IN_PROGRESS needs the client's `start_code`: a wrong one is 422 "
                "`wrong_start_code`; attempts are limited to 5 per 10 minutes per "
                "intervention (429). Each wrong code is told to the client over its socket "
                "(`start_code.failed`); every 5th reissues the code to the client, and after "
                "15 the job takes no more codes: 409 `start_code_locked` (the client can "
                "still cancel). Any other move is 409 `illegal_transition`."
            ),
            "security": BEARER,
            "parameters": [_ID_PARAM],
            "requestBody": json_body(ref("StatusChange")),
            "responses": {
                "200": _JOB,
                **problems(400, 401, 403, 404, 409, 413, 422, 429, 503),
            },
        }
    },
    "/interventions/{id}/rating": {
        "post": {
            "tags": ["interventions"],
            "summary": "Rate the artisan once, after COMPLETED (its CLIENT)",
            "description": "409 `not_completed` before COMPLETED, 409 `already_rated` the "
            "second time. The artisan's rating becomes the average of all ratings received.",
            "security": BEARER,
            "parameters": [_ID_PARAM],
            "requestBody": json_body(ref("RatingRequest")),
            "responses": {
                "201": json_ok(ref("Rating"), "Rated"),
                **problems(400, 401, 403, 404, 409, 413, 422),
            },
        }
    },
    "/admin/match": {
        "get": {
            "tags": ["admin"],
            "summary": "The ranking the dispatcher would use now (ADMIN)",
            "description": "Eligible (ONLINE, VERIFIED, not BUSY) artisans of the specialty "
            "within ZENDO_MATCH_RADIUS_KM, best first, from the live index.",
            "security": BEARER,
            "parameters": [
                {"name": "lat", "in": "query", "required": True, "schema": _LAT},
                {"name": "lon", "in": "query", "required": True, "schema": _LON},
                {"name": "specialty", "in": "query", "required": True, "schema": SPECIALTY},
                {
                    "name": "k",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
                },
            ],
            "responses": {
                "200": json_ok({"type": "array", "items": ref("MatchCandidate")}),
                **problems(401, 403, 422, 503),
            },
        }
    },
}
