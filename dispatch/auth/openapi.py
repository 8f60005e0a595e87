"""OpenAPI fragment of the auth context (CONTRACT §2).

`User` and `Artisan` are the shared user and artisan-profile objects; other
fragments reference them with `ref("User")` / `ref("Artisan")`.
"""

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

_WEB_CLIENT_HEADER: dict[str, Any] = {
    "name": "X-Zendo-Client",
    "in": "header",
    "required": False,
    "description": (
        "`web` for browser clients: the refresh token is then set in the `zendo_rt` "
        "cookie (HttpOnly; Secure; SameSite=Strict; Path=/auth) and left out of the "
        "body. `/auth/refresh` and `/auth/logout` accept that cookie only together "
        "with this header (CSRF guard); the cookie without it is a 401 "
        "`csrf_header_required`."
    ),
    "schema": {"type": "string", "enum": ["web"]},
}
_REFRESH_COOKIE: dict[str, Any] = {
    "name": "zendo_rt",
    "in": "cookie",
    "required": False,
    "description": "Refresh token of a web client (only with `X-Zendo-Client: web`).",
    "schema": {"type": "string"},
}
_SET_COOKIE: dict[str, Any] = {
    "Set-Cookie": {
        "description": "Web clients only: `zendo_rt=<refresh token>; HttpOnly; Secure; "
        "SameSite=Strict; Path=/auth; Max-Age=604800`.",
        "schema": {"type": "string"},
    }
}


def _token_response(description: str) -> dict[str, Any]:
    response = json_ok(ref("TokenResponse"), description)
    response["headers"] = _SET_COOKIE
    return response


_NO_AUTH: list[dict[str, list[str]]] = []

PATHS: dict[str, Any] = {
    "/auth/register": {
        "post": {
            "tags": ["auth"],
            "summary": "Create a CLIENT or ARTISAN account and log it in",
            "description": (
                "Email is case-insensitive (stored lower-cased). `specialty` is required "
                "for artisans and refused for clients. `role: ADMIN` is a 422 (admins "
                "are made with `zendo create-admin`). Passwords are 8 to 128 characters; "
                "every character counts (no 72-byte bcrypt truncation). An artisan "
                "starts PENDING until an admin verifies them."
            ),
            "security": _NO_AUTH,
            "parameters": [_WEB_CLIENT_HEADER],
            "requestBody": json_body(ref("RegisterRequest")),
            "responses": {
                "201": _token_response("Account created; tokens issued"),
                **problems(400, 409, 413, 422),
            },
        }
    },
    "/auth/login": {
        "post": {
            "tags": ["auth"],
            "summary": "Log in with email and password",
            "description": (
                "Unknown email and wrong password both answer 401 `invalid_credentials`, "
                "in about the same time. Rate limited per client IP and per account "
                "(`ZENDO_LOGIN_ATTEMPTS_PER_MIN` attempts per sliding minute, successful "
                "or not): 429 with `Retry-After`; 503 if the limiter (Redis) is down. "
                "Also the way to renew the access tokens written by `zendo seed`."
            ),
            "security": _NO_AUTH,
            "parameters": [_WEB_CLIENT_HEADER],
            "requestBody": json_body(ref("LoginRequest")),
            "responses": {
                "200": _token_response("Logged in; a new refresh-token family starts"),
                **problems(400, 401, 413, 422, 429, 503),
            },
        }
    },
    "/auth/refresh": {
        "post": {
            "tags": ["auth"],
            "summary": "Rotate a refresh token",
            "description": (
                "Send `{refresh_token}` (mobile) or the `zendo_rt` cookie with "
                "`X-Zendo-Client: web`. The token is consumed and a new one issued in "
                "the same family; a family (a login session) lasts 7 days from the login, "
                "absolute: `refresh_expires_in` is what is left of it. Presenting an "
                "already-used token revokes its whole family, newer tokens and their "
                "access tokens included, and answers 401 `refresh_token_reused`. Of two "
                "concurrent refreshes of one token exactly one succeeds; a token rotated "
                "less than 10 s ago is refused with 401 `refresh_token_rotated` without "
                "revoking anything (the winner's session lives on). Unknown, expired or "
                "revoked tokens: 401 `invalid_refresh_token`."
            ),
            "security": _NO_AUTH,
            "parameters": [_WEB_CLIENT_HEADER, _REFRESH_COOKIE],
            "requestBody": json_body(ref("RefreshRequest"), required=False),
            "responses": {
                "200": _token_response("New access and refresh tokens"),
                **problems(400, 401, 413, 422, 503),
            },
        }
    },
    "/auth/logout": {
        "post": {
            "tags": ["auth"],
            "summary": "End a session: the refresh token's whole family is revoked",
            "description": (
                "Idempotent: an unknown or already revoked token also answers 204. "
                "Clears the `zendo_rt` cookie for web clients. The session's access "
                "tokens stop working at once (401 `session_revoked`) and its open "
                "sockets are closed with 4401, on every process. 503 when the "
                "revocation cannot be recorded (Redis down): retry."
            ),
            "security": _NO_AUTH,
            "parameters": [_WEB_CLIENT_HEADER, _REFRESH_COOKIE],
            "requestBody": json_body(ref("RefreshRequest"), required=False),
            "responses": {
                "204": {"description": "Logged out", "headers": _SET_COOKIE},
                **problems(400, 401, 413, 422, 503),
            },
        }
    },
    "/auth/me": {
        "get": {
            "tags": ["auth"],
            "summary": "The caller's account, with the artisan profile for artisans",
            "security": BEARER,
            "responses": {"200": json_ok(ref("User")), **problems(401)},
        }
    },
}

_NULLABLE_STRING: dict[str, Any] = {"type": ["string", "null"]}

SCHEMAS: dict[str, Any] = {
    "RegisterRequest": {
        "type": "object",
        "examples": [
            {"email": "client@example.com", "password": "correct-horse", "role": "CLIENT"},
            {
                "email": "artisan@example.com",
                "password": "correct-horse",
                "role": "ARTISAN",
                "specialty": "PLUMBER",
                "phone_number": "+33 6 12 34 56 78",
            },
        ],
        "required": ["email", "password", "role"],
        "properties": {
            "email": {"type": "string", "format": "email", "maxLength": 254},
            "password": {"type": "string", "minLength": 8, "maxLength": 128},
            "role": {"type": "string", "enum": ["CLIENT", "ARTISAN"]},
            "phone_number": {
                "type": ["string", "null"],
                "maxLength": 20,
                "description": "Optional leading +, digits and spaces/dots/dashes/"
                "parentheses; 6 to 15 digits.",
            },
            "specialty": {
                "anyOf": [SPECIALTY, {"type": "null"}],
                "description": "Required for ARTISAN, refused for CLIENT.",
            },
        },
    },
    "LoginRequest": {
        "type": "object",
        "examples": [{"email": "client@example.com", "password": "correct-horse"}],
        "required": ["email", "password"],
        "properties": {
            "email": {"type": "string", "maxLength": 254},
            "password": {"type": "string", "maxLength": 128},
        },
    },
    "RefreshRequest": {
        "type": "object",
        "description": "Mobile clients send this body. Web clients (`X-Zendo-Client: web`) "
        "send no body, or `{}`, and the `zendo_rt` cookie instead.",
        "required": ["refresh_token"],
        "properties": {"refresh_token": {"type": "string", "description": "Opaque token"}},
    },
    "TokenResponse": {
        "type": "object",
        "required": [
            "access_token",
            "token_type",
            "expires_in",
            "refresh_expires_in",
            "user",
        ],
        "properties": {
            "access_token": {
                "type": "string",
                "description": "JWT HS256, 15 minutes; claim `sid` names its session",
            },
            "token_type": {"type": "string", "enum": ["Bearer"]},
            "expires_in": {"type": "integer", "description": "Access token lifetime, s"},
            "refresh_token": {
                "type": "string",
                "description": "Opaque, single use. Absent for web clients "
                "(`X-Zendo-Client: web`), who get it in the `zendo_rt` cookie instead.",
            },
            "refresh_expires_in": {
                "type": "integer",
                "description": "Seconds the refresh token has left: 604800 (7 days) at "
                "login, then what is left of the session's 7 days after each rotation",
            },
            "user": ref("User"),
        },
    },
    "User": {
        "type": "object",
        "required": ["id", "email", "phone_number", "role", "is_verified", "created_at"],
        "properties": {
            "id": UUID,
            "email": {"type": "string"},
            "phone_number": _NULLABLE_STRING,
            "role": {"type": "string", "enum": ["CLIENT", "ARTISAN", "ADMIN"]},
            "is_verified": {"type": "boolean"},
            "created_at": TIMESTAMP,
            "artisan": {
                "anyOf": [ref("Artisan"), {"type": "null"}],
                "description": "The artisan profile; null for clients and admins.",
            },
        },
    },
    "Artisan": {
        "type": "object",
        "required": [
            "user_id",
            "status",
            "current_status",
            "level",
            "specialty",
            "rating",
            "location",
            "payouts_enabled",
        ],
        "properties": {
            "user_id": UUID,
            "status": {"type": "string", "enum": ["PENDING", "VERIFIED", "REJECTED"]},
            "current_status": {"type": "string", "enum": ["ONLINE", "BUSY", "OFFLINE"]},
            "level": {"type": "string", "enum": ["STANDARD", "PRO_PLUS", "ELITE"]},
            "specialty": SPECIALTY,
            "rating": {"type": "number", "minimum": 0, "maximum": 5},
            "location": {
                "anyOf": [
                    {
                        "type": "object",
                        "required": ["lat", "lon"],
                        "properties": {
                            "lat": {"type": "number", "minimum": -90, "maximum": 90},
                            "lon": {"type": "number", "minimum": -180, "maximum": 180},
                        },
                    },
                    {"type": "null"},
                ],
                "description": "Last known location",
            },
            "payouts_enabled": {"type": "boolean"},
        },
    },
}
