"""POST /auth/refresh and /auth/logout: rotation, reuse detection, concurrency (CONTRACT §2)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from core.settings import Settings
from core.tokens import hash_refresh_token, verify_access_token
from tests.factories import bearer
from tests.helpers import register

Client = TestClient[Any, Any]


async def _refresh(client: Client, token: str) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/auth/refresh", json={"refresh_token": token})
    return resp.status, await resp.json()


async def test_refresh_rotates_the_token(
    client: Client, settings: Settings, db: asyncpg.Connection
) -> None:
    reg = await register(client)
    status, body = await _refresh(client, reg["refresh_token"])
    assert status == 200
    assert body["refresh_token"] != reg["refresh_token"]
    assert body["access_token"] != reg["access_token"]
    assert body["user"] == reg["user"]
    assert reg["refresh_expires_in"] == 604800
    # 7 days absolute: the rotated token has what is left of the session, not 7 more days
    assert body["expires_in"] == 900 and 604700 < body["refresh_expires_in"] <= 604800
    principal = verify_access_token(settings.jwt_secret, body["access_token"])
    assert str(principal.user_id) == reg["user"]["id"]
    rows = await db.fetch(
        "SELECT family_id, used_at IS NOT NULL AS used, expires_at "
        "FROM refresh_tokens ORDER BY issued_at"
    )
    assert len({r["family_id"] for r in rows}) == 1  # same family
    assert [r["used"] for r in rows] == [True, False]
    assert len({r["expires_at"] for r in rows}) == 1  # one absolute expiry
    # the new one rotates again
    status, again = await _refresh(client, body["refresh_token"])
    assert status == 200 and again["refresh_token"] != body["refresh_token"]


async def test_reusing_a_rotated_token_revokes_the_family(
    client: Client, db: asyncpg.Connection
) -> None:
    reg = await register(client)
    _, rotated = await _refresh(client, reg["refresh_token"])
    # a replay after the grace for concurrent refreshes
    await db.execute(
        "UPDATE refresh_tokens SET used_at = now() - interval '1 minute' WHERE used_at IS NOT NULL"
    )
    status, problem = await _refresh(client, reg["refresh_token"])  # replay
    assert status == 401
    assert problem["code"] == "refresh_token_reused"
    # the newer sibling is dead too
    status, problem = await _refresh(client, rotated["refresh_token"])
    assert status == 401
    assert problem["code"] == "invalid_refresh_token"
    reason = await db.fetchval("SELECT revoked_reason FROM refresh_token_families")
    assert reason == "REUSE"


async def test_reuse_does_not_touch_other_sessions(client: Client, db: asyncpg.Connection) -> None:
    reg = await register(client, email="two@example.com")
    resp = await client.post(
        "/auth/login", json={"email": "two@example.com", "password": "s3cret-passphrase"}
    )
    other = await resp.json()
    await _refresh(client, reg["refresh_token"])
    await db.execute(
        "UPDATE refresh_tokens SET used_at = now() - interval '1 minute' WHERE used_at IS NOT NULL"
    )
    status, problem = await _refresh(client, reg["refresh_token"])  # reuse: family 1 revoked
    assert status == 401 and problem["code"] == "refresh_token_reused"
    status, _ = await _refresh(client, other["refresh_token"])
    assert status == 200


async def test_concurrent_refreshes_of_one_token_exactly_one_wins(
    client: Client, db: asyncpg.Connection
) -> None:
    reg = await register(client)
    results = await asyncio.gather(*(_refresh(client, reg["refresh_token"]) for _ in range(10)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] + [401] * 9
    assert {body["code"] for status, body in results if status == 401} == {"refresh_token_rotated"}
    # one new token was issued, not ten
    assert await db.fetchval("SELECT count(*) FROM refresh_tokens") == 2
    # the losers were refused without revoking: the winner's session lives on
    assert await db.fetchval("SELECT revoked_at FROM refresh_token_families") is None
    winner = next(body for status, body in results if status == 200)
    me = await client.get("/auth/me", headers=bearer(winner["access_token"]))
    assert me.status == 200
    status, again = await _refresh(client, winner["refresh_token"])
    assert status == 200 and again["user"]["id"] == reg["user"]["id"]


async def test_unknown_and_garbage_refresh_tokens_are_401(client: Client) -> None:
    for token in ("nope", "", "x" * 5000, "é"):
        status, problem = await _refresh(client, token)
        assert status == 401, token
        assert problem["code"] == "invalid_refresh_token"
    # U+0000 in any request string is refused at decoding, like everywhere else.
    status, problem = await _refresh(client, "é\u0000")
    assert status == 422 and problem["errors"][0]["field"] == "refresh_token"


async def test_expired_refresh_token_is_401(client: Client, db: asyncpg.Connection) -> None:
    reg = await register(client)
    await db.execute(
        "UPDATE refresh_tokens SET issued_at = now() - interval '8 days', "
        "expires_at = now() - interval '1 day'"
    )
    status, problem = await _refresh(client, reg["refresh_token"])
    assert status == 401 and problem["code"] == "invalid_refresh_token"


async def test_access_token_is_not_a_refresh_token(client: Client) -> None:
    reg = await register(client)
    status, _ = await _refresh(client, reg["access_token"])
    assert status == 401


async def test_refresh_without_a_token_is_422(client: Client) -> None:
    kwargs: dict[str, Any]
    for kwargs in ({"json": {}}, {"json": {"refresh_token": None}}, {}):
        resp = await client.post("/auth/refresh", **kwargs)
        assert resp.status == 422
        assert (await resp.json())["errors"][0]["field"] == "refresh_token"
    resp = await client.post("/auth/refresh", json={"refresh_token": 42})
    assert resp.status == 422
    resp = await client.post(
        "/auth/refresh", data=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400


async def test_logout_then_refresh_is_401(client: Client, db: asyncpg.Connection) -> None:
    reg = await register(client)
    _, rotated = await _refresh(client, reg["refresh_token"])
    resp = await client.post("/auth/logout", json={"refresh_token": rotated["refresh_token"]})
    assert resp.status == 204
    assert await resp.read() == b""
    status, problem = await _refresh(client, rotated["refresh_token"])
    assert status == 401 and problem["code"] == "invalid_refresh_token"
    assert await db.fetchval("SELECT revoked_reason FROM refresh_token_families") == "LOGOUT"
    # logging out an older token of the family kills it as well (already dead): idempotent
    resp = await client.post("/auth/logout", json={"refresh_token": reg["refresh_token"]})
    assert resp.status == 204


async def test_logout_with_an_old_token_kills_the_newest_one(client: Client) -> None:
    reg = await register(client)
    _, rotated = await _refresh(client, reg["refresh_token"])
    resp = await client.post("/auth/logout", json={"refresh_token": reg["refresh_token"]})
    assert resp.status == 204
    status, _ = await _refresh(client, rotated["refresh_token"])
    assert status == 401


async def test_logout_unknown_token_is_204_and_missing_token_is_422(client: Client) -> None:
    resp = await client.post("/auth/logout", json={"refresh_token": "unknown"})
    assert resp.status == 204
    resp = await client.post("/auth/logout", json={})
    assert resp.status == 422


async def test_refresh_token_is_stored_as_sha256(client: Client, db: asyncpg.Connection) -> None:
    reg = await register(client)
    stored = await db.fetchval("SELECT token_hash FROM refresh_tokens")
    assert stored == hash_refresh_token(reg["refresh_token"])


async def test_refresh_reflects_a_role_or_profile_change(
    client: Client, settings: Settings, db: asyncpg.Connection
) -> None:
    reg = await register(client, role="ARTISAN", specialty="HEATING")
    await db.execute("UPDATE artisans SET status = 'VERIFIED'")
    _, body = await _refresh(client, reg["refresh_token"])
    assert body["user"]["artisan"]["status"] == "VERIFIED"
    assert verify_access_token(settings.jwt_secret, body["access_token"]).role == "ARTISAN"
