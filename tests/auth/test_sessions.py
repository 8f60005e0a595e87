"""Sessions (CONTRACT §2, issue 18): 7 days absolute, logout revokes the access token,
a reused refresh token revokes the access tokens too, clock skew, no-store."""

from __future__ import annotations

import time
import uuid
from http.cookies import SimpleCookie
from typing import Any

import asyncpg
import jwt
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from core.settings import Settings
from core.tokens import ALGORITHM, AUDIENCE, ISSUER, issue_access_token
from tests.factories import bearer, create_user, token_for
from tests.helpers import PASSWORD, StartApp, login, register
from tests.ports import free_port

Client = TestClient[Any, Any]


async def _refresh(client: Client, token: str) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/auth/refresh", json={"refresh_token": token})
    return resp.status, await resp.json()


async def _me(client: Client, access: str) -> tuple[int, dict[str, Any]]:
    resp = await client.get("/auth/me", headers=bearer(access))
    return resp.status, await resp.json()


async def test_a_session_ends_7_days_after_login_whatever_its_rotations(
    client: Client, db: asyncpg.Connection
) -> None:
    reg = await register(client)
    # six days in: a rotation only gets what is left of the week
    await db.execute("UPDATE refresh_token_families SET created_at = now() - interval '6 days'")
    status, body = await _refresh(client, reg["refresh_token"])
    assert status == 200
    assert 86300 < body["refresh_expires_in"] <= 86400
    expires = await db.fetchval(
        "SELECT expires_at - now() FROM refresh_tokens WHERE used_at IS NULL"
    )
    assert expires.total_seconds() <= 86400
    # past the week: refused, even though this token itself was issued a moment ago
    await db.execute(
        "UPDATE refresh_token_families SET created_at = now() - interval '7 days 1 minute'"
    )
    await db.execute("UPDATE refresh_tokens SET expires_at = now() + interval '1 day'")
    status, problem = await _refresh(client, body["refresh_token"])
    assert status == 401 and problem["code"] == "invalid_refresh_token"


async def test_the_refresh_cookie_lives_as_long_as_the_session(
    client: Client, db: asyncpg.Connection
) -> None:
    web = {"X-Zendo-Client": "web"}
    resp = await client.post(
        "/auth/register",
        json={"email": "w@example.com", "password": PASSWORD, "role": "CLIENT"},
        headers=web,
    )
    assert resp.status == 201
    token = _cookie(resp)["zendo_rt"].value
    await db.execute("UPDATE refresh_token_families SET created_at = now() - interval '6 days'")
    resp = await client.post("/auth/refresh", headers={**web, "Cookie": f"zendo_rt={token}"})
    assert resp.status == 200
    max_age = int(_cookie(resp)["zendo_rt"]["max-age"])
    assert 86300 < max_age <= 86400


def _cookie(resp: ClientResponse) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    jar.load(resp.headers["Set-Cookie"])
    return jar


async def test_logout_revokes_the_access_token_of_that_session_only(client: Client) -> None:
    reg = await register(client, email="sam@example.com")
    status, other = await login(client, "sam@example.com")
    assert status == 200
    _, rotated = await _refresh(client, reg["refresh_token"])
    assert (await _me(client, reg["access_token"]))[0] == 200
    resp = await client.post("/auth/logout", json={"refresh_token": rotated["refresh_token"]})
    assert resp.status == 204
    # both access tokens of the session (before and after its rotation) are dead now
    for access in (reg["access_token"], rotated["access_token"]):
        status, problem = await _me(client, access)
        assert status == 401 and problem["code"] == "session_revoked"
    # through a role guard and the prefix guard alike
    resp = await client.get("/interventions", headers=bearer(rotated["access_token"]))
    assert resp.status == 401
    # the user's other session is untouched
    assert (await _me(client, other["access_token"]))[0] == 200


async def test_reuse_revokes_the_sessions_access_tokens(
    client: Client, db: asyncpg.Connection
) -> None:
    reg = await register(client)
    _, rotated = await _refresh(client, reg["refresh_token"])
    await db.execute(
        "UPDATE refresh_tokens SET used_at = now() - interval '1 minute' WHERE used_at IS NOT NULL"
    )
    status, problem = await _refresh(client, reg["refresh_token"])
    assert status == 401 and problem["code"] == "refresh_token_reused"
    status, problem = await _me(client, rotated["access_token"])
    assert status == 401 and problem["code"] == "session_revoked"


async def test_a_rotated_token_within_the_grace_is_refused_without_revoking(
    client: Client, db: asyncpg.Connection
) -> None:
    reg = await register(client)
    _, rotated = await _refresh(client, reg["refresh_token"])
    status, problem = await _refresh(client, reg["refresh_token"])
    assert status == 401 and problem["code"] == "refresh_token_rotated"
    assert await db.fetchval("SELECT revoked_at FROM refresh_token_families") is None
    assert (await _me(client, rotated["access_token"]))[0] == 200


def _token(settings: Settings, user_id: str, **claims: Any) -> str:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": user_id,
        "role": "CLIENT",
        "typ": "access",
        "iat": now,
        "exp": now + 900,
        "jti": uuid.uuid4().hex,
        "iss": ISSUER,
        "aud": AUDIENCE,
    }
    base.update(claims)
    return jwt.encode(base, settings.jwt_secret, algorithm=ALGORITHM)


async def test_clock_skew_of_30s_on_iat_and_nbf_but_not_more(
    client: Client, settings: Settings
) -> None:
    reg = await register(client)
    uid = reg["user"]["id"]
    now = int(time.time())
    for claims in ({"iat": now + 20}, {"nbf": now + 20}):
        status, _ = await _me(client, _token(settings, uid, **claims))
        assert status == 200, claims
    for claims in ({"iat": now + 120}, {"nbf": now + 120}):
        status, problem = await _me(client, _token(settings, uid, **claims))
        assert status == 401 and problem["code"] == "invalid_token", claims
    # the skew never extends expiry
    status, problem = await _me(client, _token(settings, uid, iat=now - 920, exp=now - 5))
    assert status == 401 and problem["code"] == "token_expired"


async def test_a_forged_session_claim_is_refused(client: Client, settings: Settings) -> None:
    reg = await register(client)
    status, problem = await _me(client, _token(settings, reg["user"]["id"], sid="not-a-uuid"))
    assert status == 401 and problem["code"] == "invalid_token"


async def test_no_store_on_answers_with_tokens_or_personal_data(client: Client) -> None:
    reg = await register(client)
    auth = bearer(reg["access_token"])
    for method, path, headers in (
        ("GET", "/auth/me", auth),
        ("GET", "/interventions", auth),
        ("GET", "/auth/me", {}),  # the 401 too
        ("POST", "/auth/refresh", {}),  # the 422 too
    ):
        resp = await client.request(method, path, headers=headers)
        assert resp.headers["Cache-Control"] == "no-store", (method, path, resp.status)


async def test_without_redis_a_sessions_token_is_503_not_trusted(
    start_app: StartApp, settings: Settings, db: asyncpg.Connection
) -> None:
    """The revocation check fails closed: a token naming a session is not accepted
    unchecked while Redis is down (503, retry); a token without one needs no check."""
    user_id = await create_user(db)
    down = await start_app(settings.replace(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    with_session = issue_access_token(
        settings.jwt_secret, user_id=user_id, role="CLIENT", ttl_s=900, session_id=uuid.uuid4()
    )
    resp = await down.get("/auth/me", headers=bearer(with_session))
    assert resp.status == 503
    assert (await resp.json())["code"] == "unavailable"
    resp = await down.get("/auth/me", headers=bearer(token_for(settings, user_id, "CLIENT")))
    assert resp.status == 200
