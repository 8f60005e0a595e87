"""OpenAPI fragment of the local storage backend's signed URLs."""

from __future__ import annotations

from typing import Any

from core.openapi import problems

_TOKEN = {
    "name": "token",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "Signed, expiring token from an `upload` or `download_url` (no login needed)",
}

PATHS: dict[str, Any] = {
    "/storage/upload/{token}": {
        "put": {
            "summary": "Upload a file to a signed URL (local storage backend)",
            "description": (
                "Send the raw file as the body with the `headers` of the upload object. "
                "The body is streamed; anything over the declared size is refused (413). "
                "Expired or tampered URLs get 403 (`url_expired`, `invalid_signature`); "
                "a Content-Type other than the declared one gets 422 "
                "(`content_type_mismatch`). URLs are write-once: a second upload is 409 "
                "(`already_uploaded`) unless the first was rejected at completion. Served only when ZENDO_STORAGE=local (else 404)."
            ),
            "parameters": [_TOKEN],
            "requestBody": {
                "required": True,
                "content": {
                    "application/pdf": {"schema": {"type": "string", "format": "binary"}},
                    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                    "image/png": {"schema": {"type": "string", "format": "binary"}},
                },
            },
            "responses": {
                "204": {"description": "Stored"},
                **problems(403, 404, 409, 413, 422),
            },
        }
    },
    "/storage/download/{token}": {
        "get": {
            "summary": "Download a private file through a signed, short-lived URL",
            "parameters": [_TOKEN],
            "responses": {
                "200": {
                    "description": "The file, as an attachment",
                    "content": {
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        }
                    },
                },
                **problems(403, 404),
            },
        }
    },
}
SCHEMAS: dict[str, Any] = {}
