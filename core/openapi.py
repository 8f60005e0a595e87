"""Schemas and responses shared by every context's OpenAPI fragment."""

from __future__ import annotations

from typing import Any

UUID: dict[str, Any] = {"type": "string", "format": "uuid"}
TIMESTAMP: dict[str, Any] = {"type": "string", "format": "date-time"}
SPECIALTY: dict[str, Any] = {
    "type": "string",
    "enum": ["PLUMBER", "ELECTRICIAN", "LOCKSMITH", "HEATING", "GLAZIER", "APPLIANCE_REPAIR"],
}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def json_ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def problems(*statuses: int) -> dict[str, Any]:
    """`responses` entries for the given error statuses, all problem+json."""
    return {str(s): {"$ref": f"#/components/responses/Problem{s}"} for s in statuses}


BEARER: list[dict[str, list[str]]] = [{"bearer": []}]

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    },
}

RESPONSES: dict[str, Any] = {
    f"Problem{status}": {
        "description": description,
        "content": {"application/problem+json": {"schema": ref("Problem")}},
    }
    for status, description in (
        (400, "Malformed request"),
        (
            401,
            "Missing or invalid token (`invalid_token`, `token_expired`, or "
            "`session_revoked` once its session logged out)",
        ),
        (403, "Wrong role"),
        (404, "Unknown, or not yours"),
        (409, "State conflict"),
        (413, "Body over 1 MiB"),
        (422, "Invalid field"),
        (429, "Rate limited"),
        (503, "Unavailable"),
    )
}
