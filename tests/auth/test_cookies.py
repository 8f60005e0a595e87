"""Web clients: the refresh token only in the `zendo_rt` cookie, with a CSRF guard (CONTRACT §2)."""

from __future__ import annotations

from http.cookies import SimpleCookie
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from tests.helpers import PASSWORD

Client = TestClient[Any, Any]
WEB = {"X-Zendo-Client": "web"}


def _set_cookie(resp: ClientResponse) -> Any:
    headers = resp.headers.getall("Set-Cookie")
    assert len(headers) == 1, headers
    jar: SimpleCookie = SimpleCookie()
    jar.load(headers[0])
    return jar["zendo_rt"], headers[0]


def _assert_flags(raw: str) -> None:
    attrs = {part.strip().split("=")[0].lower(): part.strip() for part in raw.split(";")[1:]}
    assert "httponly" in attrs and "secure" in attrs
    assert attrs["samesite"].lower() == "samesite=strict"
    assert attrs["path"] == "Path=/auth"


async def _web_register(client: Client) -> tuple[dict[str, Any], str]:
    resp = await client.post(
        "/auth/register",
        json={"email": "web@example.com", "password": PASSWORD, "role": "CLIENT"},
        headers=WEB,
    )
    assert resp.status == 201
    morsel, raw = _set_cookie(resp)
    _assert_flags(raw)
    assert morsel["max-age"] == "604800"
    return await resp.json(), morsel.value


async def test_web_register_sets_cookie_and_body_has_no_refresh_token(client: Client) -> None:
    body, token = await _web_register(client)
    assert "refresh_token" not in body
    assert token and token not in str(body)
    assert body["refresh_expires_in"] == 604800 and body["access_token"]


async def test_web_login_and_refresh_use_the_cookie_only(client: Client) -> None:
    await _web_register(client)
    resp = await client.post(
        "/auth/login", json={"email": "web@example.com", "password": PASSWORD}, headers=WEB
    )
    assert resp.status == 200
    assert "refresh_token" not in await resp.json()
    morsel, raw = _set_cookie(resp)
    _assert_flags(raw)

    resp = await client.post("/auth/refresh", headers={**WEB, "Cookie": f"zendo_rt={morsel.value}"})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert "refresh_token" not in body
    rotated, raw = _set_cookie(resp)
    _assert_flags(raw)
    assert rotated.value != morsel.value
    # the old cookie is now a reused token
    resp = await client.post("/auth/refresh", headers={**WEB, "Cookie": f"zendo_rt={morsel.value}"})
    assert resp.status == 401


async def test_cookie_without_the_header_is_refused(client: Client) -> None:
    _, token = await _web_register(client)
    for path in ("/auth/refresh", "/auth/logout"):
        for headers in ({}, {"X-Zendo-Client": "mobile"}):
            resp = await client.post(path, headers={**headers, "Cookie": f"zendo_rt={token}"})
            assert resp.status == 401, path
            assert (await resp.json())["code"] == "csrf_header_required"
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    # the refused attempts consumed nothing: the cookie still works with the header
    resp = await client.post("/auth/refresh", headers={**WEB, "Cookie": f"zendo_rt={token}"})
    assert resp.status == 200


async def test_web_refresh_without_cookie_is_422(client: Client) -> None:
    resp = await client.post("/auth/refresh", headers=WEB)
    assert resp.status == 422


async def test_web_logout_revokes_and_clears_the_cookie(client: Client) -> None:
    _, token = await _web_register(client)
    resp = await client.post("/auth/logout", headers={**WEB, "Cookie": f"zendo_rt={token}"})
    assert resp.status == 204
    morsel, raw = _set_cookie(resp)
    assert morsel.value == "" and morsel["max-age"] == "0"
    _assert_flags(raw)
    resp = await client.post("/auth/refresh", headers={**WEB, "Cookie": f"zendo_rt={token}"})
    assert resp.status == 401


async def test_mobile_clients_get_no_cookie(client: Client) -> None:
    resp = await client.post(
        "/auth/register",
        json={"email": "mobile@example.com", "password": PASSWORD, "role": "CLIENT"},
    )
    assert "Set-Cookie" not in resp.headers
    assert "refresh_token" in await resp.json()
