"""OpenAPI fragment of the system routes."""

from __future__ import annotations

from typing import Any

from core.openapi import SPECIALTY, json_ok, problems

_READY = {
    "type": "object",
    "required": ["status", "postgres", "redis", "payments"],
    "properties": {
        "status": {"type": "string", "enum": ["ready", "unavailable"]},
        "postgres": {"type": "string", "enum": ["ok", "unavailable"]},
        "redis": {"type": "string", "enum": ["ok", "unavailable"]},
        "payments": {"type": "string"},
    },
}

PATHS: dict[str, Any] = {
    "/healthz": {
        "get": {
            "summary": "Process is alive",
            "responses": {"200": json_ok({"type": "object", "required": ["status"]})},
        }
    },
    "/readyz": {
        "get": {
            "summary": "PostgreSQL and Redis reachable; says whether payments are enabled",
            "responses": {
                "200": json_ok(_READY),
                "503": {
                    "description": "A dependency is down",
                    "content": {"application/json": {"schema": _READY}},
                },
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics",
            "description": "When `ZENDO_METRICS_TOKEN` is set, only `Authorization: Bearer "
            "<that token>` reads them; anything else is 401 `invalid_metrics_token`.",
            "responses": {
                "200": {
                    "description": "Prometheus text format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                **problems(401),
            },
        }
    },
    "/specialties": {
        "get": {
            "summary": "Specialties",
            "responses": {"200": json_ok({"type": "array", "items": SPECIALTY})},
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "responses": {"200": json_ok({"type": "object"}), **problems()},
        }
    },
}
SCHEMAS: dict[str, Any] = {}
