"""POST /auth/register and GET /auth/me (CONTRACT §2)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from core.domain import SPECIALTIES
from core.settings import Settings
from core.tokens import verify_access_token
from tests.factories import bearer
from tests.helpers import PASSWORD, register

Client = TestClient[Any, Any]


async def test_register_client_returns_token_response(
    client: Client, settings: Settings, db: asyncpg.Connection
) -> None:
    resp = await client.post(
        "/auth/register",
        json={
            "email": "Ada@Example.COM",
            "password": PASSWORD,
            "role": "CLIENT",
            "phone_number": "+33 6 12 34 56 78",
        },
    )
    assert resp.status == 201
    assert resp.headers["Cache-Control"] == "no-store"
    body = await resp.json()
    assert set(body) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "refresh_expires_in",
        "user",
    }
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900 and body["refresh_expires_in"] == 604800
    user = body["user"]
    assert user["email"] == "ada@example.com"  # lower-cased
    assert user["role"] == "CLIENT" and user["artisan"] is None
    assert user["phone_number"] == "+33 6 12 34 56 78"
    assert user["is_verified"] is False and user["created_at"].endswith("Z")
    principal = verify_access_token(settings.jwt_secret, body["access_token"])
    assert str(principal.user_id) == user["id"] and principal.role == "CLIENT"
    stored = await db.fetchval("SELECT password_hash FROM users WHERE id = $1::uuid", user["id"])
    assert PASSWORD not in stored and stored.startswith("$sha256b64$$2b$10$")
    # the refresh token is stored hashed only
    count = await db.fetchval(
        "SELECT count(*) FROM refresh_tokens WHERE user_id = $1::uuid", user["id"]
    )
    assert count == 1
    raw = body["refresh_token"].encode()
    assert await db.fetchval("SELECT count(*) FROM refresh_tokens WHERE token_hash = $1", raw) == 0


async def test_register_artisan_creates_pending_profile_and_me_shows_it(client: Client) -> None:
    body = await register(client, email="bob@example.com", role="ARTISAN", specialty="LOCKSMITH")
    artisan = body["user"]["artisan"]
    assert artisan == {
        "user_id": body["user"]["id"],
        "status": "PENDING",
        "current_status": "OFFLINE",
        "level": "STANDARD",
        "specialty": "LOCKSMITH",
        "rating": 5.0,
        "location": None,
        "payouts_enabled": False,
    }
    resp = await client.get("/auth/me", headers=bearer(body["access_token"]))
    assert resp.status == 200
    assert await resp.json() == body["user"]


async def test_me_shows_artisan_location(client: Client, db: asyncpg.Connection) -> None:
    body = await register(client, email="loc@example.com", role="ARTISAN", specialty="PLUMBER")
    await db.execute(
        "UPDATE artisans SET location = ST_SetSRID(ST_MakePoint(2.35, 48.85), 4326)::geography"
    )
    me = await (await client.get("/auth/me", headers=bearer(body["access_token"]))).json()
    assert me["artisan"]["location"] == pytest.approx({"lat": 48.85, "lon": 2.35})


async def test_me_requires_a_token(client: Client) -> None:
    resp = await client.get("/auth/me")
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert resp.content_type == "application/problem+json"


async def test_duplicate_email_is_409_case_insensitively(client: Client) -> None:
    await register(client, email="dup@example.com")
    resp = await client.post(
        "/auth/register",
        json={
            "email": "DUP@example.com",
            "password": PASSWORD,
            "role": "ARTISAN",
            "specialty": "GLAZIER",
        },
    )
    assert resp.status == 409
    assert (await resp.json())["code"] == "email_taken"


async def test_concurrent_duplicate_registration_one_wins(client: Client) -> None:
    payload = {"email": "race@example.com", "password": PASSWORD, "role": "CLIENT"}
    resps = await asyncio.gather(*(client.post("/auth/register", json=payload) for _ in range(4)))
    assert sorted(r.status for r in resps) == [201, 409, 409, 409]


@pytest.mark.parametrize("specialty", SPECIALTIES)
async def test_every_specialty_registers(client: Client, specialty: str) -> None:
    body = await register(client, email="s@example.com", role="ARTISAN", specialty=specialty)
    assert body["user"]["artisan"]["specialty"] == specialty


def _fields(body: dict[str, Any]) -> set[str]:
    return {e["field"] for e in body["errors"]}


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({"email": "a@b.co", "password": PASSWORD, "role": "ADMIN"}, {"role"}),
        ({"email": "a@b.co", "password": PASSWORD, "role": "GOD"}, {"role"}),
        ({"email": "a@b.co", "password": PASSWORD, "role": "ARTISAN"}, {"specialty"}),
        (
            {"email": "a@b.co", "password": PASSWORD, "role": "ARTISAN", "specialty": "CHEF"},
            {"specialty"},
        ),
        (
            {"email": "a@b.co", "password": PASSWORD, "role": "CLIENT", "specialty": "PLUMBER"},
            {"specialty"},
        ),
        ({"email": "a@b.co", "password": "short7!", "role": "CLIENT"}, {"password"}),
        ({"email": "a@b.co", "password": "x" * 129, "role": "CLIENT"}, {"password"}),
        ({"email": "not-an-email", "password": PASSWORD, "role": "CLIENT"}, {"email"}),
        ({"email": "a@b", "password": PASSWORD, "role": "CLIENT"}, {"email"}),
        ({"email": " a@b.co", "password": PASSWORD, "role": "CLIENT"}, {"email"}),
        ({"email": "x" * 250 + "@b.co", "password": PASSWORD, "role": "CLIENT"}, {"email"}),
        (
            {"email": "a@b.co", "password": PASSWORD, "role": "CLIENT", "phone_number": "1" * 21},
            {"phone_number"},
        ),
        (
            {"email": "a@b.co", "password": PASSWORD, "role": "CLIENT", "phone_number": "call me"},
            {"phone_number"},
        ),
        (
            {"email": "a@b.co", "password": PASSWORD, "role": "CLIENT", "phone_number": "+1"},
            {"phone_number"},
        ),
        ({"email": "bad", "password": "short", "role": "ADMIN"}, {"email", "password", "role"}),
        ({"email": 5, "password": PASSWORD, "role": "CLIENT"}, {"email"}),
        ({"password": PASSWORD, "role": "CLIENT"}, {"email"}),
        ({"email": "a@b.co", "password": None, "role": "CLIENT"}, {"password"}),
    ],
)
async def test_invalid_fields_are_422_naming_them(
    client: Client, db: asyncpg.Connection, payload: dict[str, Any], fields: set[str]
) -> None:
    resp = await client.post("/auth/register", json=payload)
    assert resp.status == 422, await resp.text()
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    assert body["status"] == 422 and body["code"] == "validation_error"
    assert _fields(body) == fields
    assert await db.fetchval("SELECT count(*) FROM users") == 0


async def test_password_of_exactly_8_and_128_characters_is_accepted(client: Client) -> None:
    await register(client, email="min@example.com", password="k7#Qx9!m")
    await register(client, email="max@example.com", password="é" * 128)  # 256 bytes


@pytest.mark.parametrize("raw", [b"{", b"not json", b'{"email": "a@b.co",}', b""])
async def test_malformed_json_is_400(client: Client, raw: bytes) -> None:
    resp = await client.post(
        "/auth/register", data=raw, headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert (await resp.json())["code"] == "malformed_json"


async def test_non_object_body_is_422(client: Client) -> None:
    resp = await client.post("/auth/register", json=["a", "b"])
    assert resp.status == 422


async def test_body_over_1_mib_is_413(client: Client) -> None:
    big = b'{"email": "' + b"a" * (1024 * 1024) + b'"}'
    for path in ("/auth/register", "/auth/login", "/auth/refresh", "/auth/logout"):
        resp = await client.post(
            path, data=io.BytesIO(big), headers={"Content-Type": "application/json"}
        )
        assert resp.status == 413, path
        assert resp.content_type == "application/problem+json"


async def test_chunked_body_over_1_mib_is_413(client: Client) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"email": "'
        for _ in range(17):
            yield b"a" * 65536

    resp = await client.post(
        "/auth/login", data=chunks(), headers={"Content-Type": "application/json"}
    )
    assert resp.status == 413
