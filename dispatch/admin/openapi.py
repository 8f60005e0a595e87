"""OpenAPI fragment of the admin context."""

from __future__ import annotations

from typing import Any

from core.openapi import BEARER, TIMESTAMP, UUID, json_body, json_ok, problems, ref


def _path_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": UUID}


_AUDITED = " Written to the admin audit trail."

SCHEMAS: dict[str, Any] = {
    "AdminDocument": {
        "allOf": [
            ref("Document"),
            {
                "type": "object",
                "required": ["download_url", "download_expires_at"],
                "properties": {
                    "download_url": {
                        "type": "string",
                        "description": "Works without a login token, for 5 minutes",
                    },
                    "download_expires_at": TIMESTAMP,
                },
            },
        ]
    },
    "AdminArtisan": {
        "allOf": [
            ref("Artisan"),
            {
                "type": "object",
                "properties": {
                    "email": {"type": "string"},
                    "rejection_reason": {"type": ["string", "null"]},
                    "documents": {
                        "type": "array",
                        "items": ref("Document"),
                        "description": "Uploaded documents, without links: links are minted "
                        "on demand by `GET /admin/artisans/{artisan_id}/documents`",
                    },
                },
            },
        ]
    },
    "RejectArtisan": {
        "type": "object",
        "additionalProperties": False,
        "required": ["reason"],
        "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 1000}},
    },
    "DocumentReview": {
        "type": "object",
        "additionalProperties": False,
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["ACCEPTED", "REJECTED"]},
            "reason": {"type": ["string", "null"], "minLength": 1, "maxLength": 1000},
        },
    },
}

PATHS: dict[str, Any] = {
    "/admin/artisans": {
        "get": {
            "summary": "Artisans by status, with their uploaded documents (no links)",
            "description": "Ordered by sign-up; the total count is in `X-Total-Count`." + _AUDITED,
            "security": BEARER,
            "parameters": [
                {
                    "name": "status",
                    "in": "query",
                    "schema": {"type": "string", "enum": ["PENDING", "VERIFIED", "REJECTED"]},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50},
                },
                {
                    "name": "offset",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 0, "default": 0},
                },
            ],
            "responses": {
                "200": {
                    "description": "OK",
                    "headers": {"X-Total-Count": {"schema": {"type": "integer"}}},
                    "content": {
                        "application/json": {
                            "schema": {"type": "array", "items": ref("AdminArtisan")}
                        }
                    },
                },
                **problems(401, 403, 422),
            },
        }
    },
    "/admin/artisans/{artisan_id}/documents": {
        "get": {
            "summary": "An artisan's uploaded documents with download links (5 minutes)",
            "description": "Documents not uploaded yet are not listed." + _AUDITED,
            "security": BEARER,
            "parameters": [_path_id("artisan_id")],
            "responses": {
                "200": json_ok({"type": "array", "items": ref("AdminDocument")}),
                **problems(401, 403, 404),
            },
        }
    },
    "/admin/artisans/{artisan_id}/verify": {
        "post": {
            "summary": "Verify an artisan (PENDING or REJECTED -> VERIFIED)",
            "description": "Verifying a VERIFIED artisan changes nothing and answers 200."
            + _AUDITED,
            "security": BEARER,
            "parameters": [_path_id("artisan_id")],
            "responses": {"200": json_ok(ref("AdminArtisan")), **problems(401, 403, 404)},
        }
    },
    "/admin/artisans/{artisan_id}/reject": {
        "post": {
            "summary": "Reject an artisan with a reason",
            "description": (
                "An ONLINE artisan goes OFFLINE. 409 `artisan_busy` while they are on a job. "
                "Rejecting again updates the reason." + _AUDITED
            ),
            "security": BEARER,
            "parameters": [_path_id("artisan_id")],
            "requestBody": json_body(ref("RejectArtisan")),
            "responses": {
                "200": json_ok(ref("AdminArtisan")),
                **problems(400, 401, 403, 404, 409, 413, 422),
            },
        }
    },
    "/admin/documents/{document_id}/review": {
        "post": {
            "summary": "Accept or reject an uploaded document",
            "description": "409 `document_not_uploaded` before the upload is completed." + _AUDITED,
            "security": BEARER,
            "parameters": [_path_id("document_id")],
            "requestBody": json_body(ref("DocumentReview")),
            "responses": {
                "200": json_ok(ref("Document")),
                **problems(400, 401, 403, 404, 409, 413, 422),
            },
        }
    },
}
