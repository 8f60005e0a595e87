"""OpenAPI fragment of the artisans context (profile, documents, payouts, photos)."""

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


def _path_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": UUID}


_UPLOAD_ERRORS = (
    "422 codes: `upload_missing` (nothing stored yet), `size_mismatch` (over the declared "
    "size), `magic_mismatch` (the first bytes are not the declared type). A rejected file "
    "is deleted; upload again (the URL may be reused until it expires)."
)

SCHEMAS: dict[str, Any] = {
    # `Artisan` itself is defined by the auth fragment (shared with /auth/me).
    "ArtisanProfile": {
        "allOf": [
            ref("Artisan"),
            {"type": "object", "properties": {"phone_number": {"type": ["string", "null"]}}},
        ]
    },
    "ProfilePatch": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "specialty": SPECIALTY,
            "phone_number": {
                "type": ["string", "null"],
                "pattern": "^\\+?[0-9]{6,15}$",
                "description": "null clears it",
            },
        },
    },
    "UploadTarget": {
        "type": "object",
        "required": ["url", "method", "expires_at"],
        "description": (
            "PUT: send the raw file to `url` with `headers`. POST: multipart/form-data with "
            "every entry of `fields`, then the file as `file` (last)."
        ),
        "properties": {
            "url": {"type": "string"},
            "method": {"type": "string", "enum": ["PUT", "POST"]},
            "fields": {"type": "object", "additionalProperties": {"type": "string"}},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "expires_at": TIMESTAMP,
        },
    },
    "NewDocument": {
        "type": "object",
        "additionalProperties": False,
        "required": ["kind", "content_type", "size_bytes"],
        "properties": {
            "kind": {"type": "string", "enum": ["ID_CARD", "KBIS", "INSURANCE"]},
            "content_type": {
                "type": "string",
                "enum": ["application/pdf", "image/jpeg", "image/png"],
            },
            "size_bytes": {"type": "integer", "minimum": 1, "maximum": 10485760},
        },
    },
    "DocumentUpload": {
        "type": "object",
        "required": ["document_id", "upload"],
        "properties": {"document_id": UUID, "upload": ref("UploadTarget")},
    },
    "Document": {
        "type": "object",
        "required": ["document_id", "kind", "status", "size_bytes", "content_type"],
        "properties": {
            "document_id": UUID,
            "kind": {"type": "string", "enum": ["ID_CARD", "KBIS", "INSURANCE"]},
            "status": {
                "type": "string",
                "enum": ["PENDING_UPLOAD", "UPLOADED", "ACCEPTED", "REJECTED"],
            },
            "size_bytes": {"type": "integer"},
            "content_type": {"type": "string"},
            "review_reason": {"type": ["string", "null"]},
            "created_at": TIMESTAMP,
            "uploaded_at": {"type": ["string", "null"], "format": "date-time"},
        },
    },
    "OnboardingLink": {
        "type": "object",
        "required": ["url", "expires_at"],
        "properties": {"url": {"type": "string"}, "expires_at": TIMESTAMP},
    },
    "NewPhoto": {
        "type": "object",
        "additionalProperties": False,
        "required": ["phase", "content_type", "size_bytes"],
        "properties": {
            "phase": {"type": "string", "enum": ["BEFORE", "AFTER"]},
            "content_type": {"type": "string", "enum": ["image/jpeg", "image/png"]},
            "size_bytes": {"type": "integer", "minimum": 1, "maximum": 10485760},
        },
    },
    "PhotoUpload": {
        "type": "object",
        "required": ["photo_id", "upload"],
        "properties": {"photo_id": UUID, "upload": ref("UploadTarget")},
    },
    "Photo": {
        "type": "object",
        "required": ["photo_id", "intervention_id", "phase", "status", "content_type"],
        "properties": {
            "photo_id": UUID,
            "intervention_id": UUID,
            "phase": {"type": "string", "enum": ["BEFORE", "AFTER"]},
            "status": {"type": "string", "enum": ["PENDING_UPLOAD", "UPLOADED"]},
            "content_type": {"type": "string"},
            "size_bytes": {"type": "integer"},
            "created_at": TIMESTAMP,
            "uploaded_at": {"type": ["string", "null"], "format": "date-time"},
            "download_url": {"type": "string"},
            "download_expires_at": TIMESTAMP,
        },
    },
}

PATHS: dict[str, Any] = {
    "/artisan/profile": {
        "get": {
            "summary": "My artisan profile",
            "security": BEARER,
            "responses": {"200": json_ok(ref("ArtisanProfile")), **problems(401, 403, 404)},
        },
        "patch": {
            "summary": "Change my specialty and/or phone number",
            "description": "Changing the specialty during a job (BUSY) is 409 `artisan_busy`.",
            "security": BEARER,
            "requestBody": json_body(ref("ProfilePatch")),
            "responses": {
                "200": json_ok(ref("ArtisanProfile")),
                **problems(400, 401, 403, 404, 409, 413, 422),
            },
        },
    },
    "/artisan/documents": {
        "post": {
            "summary": "Declare a document and get a signed upload target",
            "description": (
                "PDF, JPEG or PNG, at most 10 MiB; the URL expires after 10 minutes. At "
                "most 30 uploaded documents (409 `too_many_documents`) and 5 open upload "
                "slots at once (409 `too_many_pending_uploads`); a slot not completed "
                "within 20 minutes is abandoned and deleted with what was sent to it."
            ),
            "security": BEARER,
            "requestBody": json_body(ref("NewDocument")),
            "responses": {
                "201": json_ok(ref("DocumentUpload"), "Created"),
                **problems(400, 401, 403, 404, 409, 413, 422),
            },
        },
        "get": {
            "summary": "My documents",
            "security": BEARER,
            "responses": {
                "200": json_ok({"type": "array", "items": ref("Document")}),
                **problems(401, 403, 404),
            },
        },
    },
    "/artisan/documents/{document_id}/complete": {
        "post": {
            "summary": "Check the uploaded file and mark the document UPLOADED",
            "description": _UPLOAD_ERRORS
            + " Completing an already completed document returns it unchanged; a slot "
            "opened more than 20 minutes ago is 404 `upload_expired`.",
            "security": BEARER,
            "parameters": [_path_id("document_id")],
            "responses": {"200": json_ok(ref("Document")), **problems(401, 403, 404, 422)},
        }
    },
    "/artisan/payouts/onboarding": {
        "post": {
            "summary": "Stripe Connect Express onboarding link",
            "description": "503 `payments_disabled` when payments are off (no STRIPE_API_KEY).",
            "security": BEARER,
            "responses": {"200": json_ok(ref("OnboardingLink")), **problems(401, 403, 404, 503)},
        }
    },
    "/interventions/{intervention_id}/photos": {
        "post": {
            "summary": "Declare a before/after photo (assigned artisan only)",
            "description": "Others get 404; 409 `intervention_not_active` before assignment "
            "or after cancellation.",
            "security": BEARER,
            "parameters": [_path_id("intervention_id")],
            "requestBody": json_body(ref("NewPhoto")),
            "responses": {
                "201": json_ok(ref("PhotoUpload"), "Created"),
                **problems(400, 401, 403, 404, 409, 413, 422),
            },
        },
        "get": {
            "summary": "Uploaded photos with short-lived download links",
            "description": "For the intervention's client, its artisan, or an admin.",
            "security": BEARER,
            "parameters": [_path_id("intervention_id")],
            "responses": {
                "200": json_ok({"type": "array", "items": ref("Photo")}),
                **problems(401, 404),
            },
        },
    },
    "/interventions/{intervention_id}/photos/{photo_id}/complete": {
        "post": {
            "summary": "Check the uploaded photo and mark it UPLOADED",
            "description": _UPLOAD_ERRORS,
            "security": BEARER,
            "parameters": [_path_id("intervention_id"), _path_id("photo_id")],
            "responses": {"200": json_ok(ref("Photo")), **problems(401, 403, 404, 422)},
        }
    },
}
