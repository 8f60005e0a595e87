"""Registration and login against abuse (CONTRACT §8a, issue 18): the registration
limit, forwarded addresses believed from trusted proxies only, common passwords, and
bodies that must answer 4xx (invalid UTF-8, deep nesting, U+0000)."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, make_mocked_request

from core.clientip import client_ip
from core.settings import Settings
from dispatch.auth import passwords
from tests.helpers import PASSWORD, register

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


async def _client(aiohttp_client: MakeClient, settings: Settings) -> Client:
    from zendo.app import create_app

    return await aiohttp_client(create_app(settings.replace(run_background=False)))


def _body(email: str, password: str = PASSWORD) -> dict[str, str]:
    return {"email": email, "password": password, "role": "CLIENT"}


async def test_registrations_are_limited_per_address(
    settings: Settings, clean_state: None, aiohttp_client: MakeClient
) -> None:
    client = await _client(aiohttp_client, settings.replace(registrations_per_min=3))
    for i in range(3):
        await register(client, email=f"u{i}@example.com")
    resp = await client.post("/auth/register", json=_body("u3@example.com"))
    assert resp.status == 429
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["code"] == "rate_limited"
    assert int(resp.headers["Retry-After"]) >= 1
    # A well-formed but invalid attempt counts too: still refused, not 422.
    resp = await client.post("/auth/register", json=_body("not-an-email"))
    assert resp.status == 429
    # Another address is not affected.
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    ) as other:
        async with other.post(
            client.make_url("/auth/register"), json=_body("u4@example.com")
        ) as resp:
            assert resp.status == 201


async def test_forwarded_for_is_ignored_from_an_untrusted_peer(
    settings: Settings, clean_state: None, aiohttp_client: MakeClient
) -> None:
    client = await _client(aiohttp_client, settings.replace(registrations_per_min=2))
    for i in range(2):
        resp = await client.post(
            "/auth/register",
            json=_body(f"s{i}@example.com"),
            headers={"X-Forwarded-For": f"203.0.113.{i}"},
        )
        assert resp.status == 201
    resp = await client.post(
        "/auth/register",
        json=_body("s9@example.com"),
        headers={"X-Forwarded-For": "203.0.113.99"},
    )
    assert resp.status == 429  # the spoofed header changed nothing


async def test_behind_a_trusted_proxy_each_client_has_its_own_login_limit(
    settings: Settings, clean_state: None, aiohttp_client: MakeClient
) -> None:
    trusted = (ipaddress.ip_network("127.0.0.0/8"),)
    client = await _client(
        aiohttp_client, settings.replace(trusted_proxies=trusted, login_attempts_per_min=3)
    )
    owner = await register(client, email="owner@example.com")
    # An attacker behind the proxy spends their address's budget on wrong passwords...
    attacker = {"X-Forwarded-For": "198.51.100.7"}
    for i in range(3):
        resp = await client.post(
            "/auth/login",
            json={"email": f"guess{i}@example.com", "password": "wrong-password"},
            headers=attacker,
        )
        assert resp.status == 401
    resp = await client.post(
        "/auth/login", json={"email": "nobody@example.com", "password": "x" * 8}, headers=attacker
    )
    assert resp.status == 429
    # ...and another client behind the same proxy still logs in.
    resp = await client.post(
        "/auth/login",
        json={"email": "owner@example.com", "password": PASSWORD},
        headers={"X-Forwarded-For": "198.51.100.8, 127.0.0.1"},
    )
    assert resp.status == 200
    # The per-account limit holds whatever addresses the attacker claims.
    for i in range(2):
        resp = await client.post(
            "/auth/login",
            json={"email": "owner@example.com", "password": "wrong-password"},
            headers={"X-Forwarded-For": f"192.0.2.{i}"},
        )
        assert resp.status == 401
    resp = await client.post(
        "/auth/login",
        json={"email": "owner@example.com", "password": PASSWORD},
        headers={"X-Forwarded-For": "192.0.2.50"},
    )
    assert resp.status == 429
    # The signed-in owner keeps their session: refresh is not behind the login limit.
    resp = await client.post("/auth/refresh", json={"refresh_token": owner["refresh_token"]})
    assert resp.status == 200


@pytest.mark.parametrize(
    ("peer", "header", "expected"),
    [
        ("10.0.0.5", "1.2.3.4", "1.2.3.4"),
        ("10.0.0.5", "6.6.6.6, 1.2.3.4", "1.2.3.4"),  # the client's own entry is ignored
        ("10.0.0.5", "1.2.3.4, 10.0.0.9", "1.2.3.4"),  # a chain of trusted proxies
        ("10.0.0.5", "not-an-ip", "10.0.0.5"),
        ("10.0.0.5", None, "10.0.0.5"),
        ("192.0.2.1", "1.2.3.4", "192.0.2.1"),  # an untrusted peer's header is ignored
    ],
)
def test_client_ip_reads_forwarded_for_from_the_right(
    peer: str, header: str | None, expected: str
) -> None:
    headers = {"X-Forwarded-For": header} if header is not None else {}
    request = make_mocked_request("GET", "/", headers=headers)
    request = request.clone(remote=peer)
    assert client_ip(request, (ipaddress.ip_network("10.0.0.0/8"),)) == expected
    assert client_ip(request, ()) == peer


def test_the_bundled_list_of_common_passwords() -> None:
    common = passwords.common_passwords()
    assert len(common) >= 10_000
    assert passwords.is_common("password123") and passwords.is_common("PassWord123")
    assert not passwords.is_common(PASSWORD)


async def test_common_passwords_are_refused(client: Client) -> None:
    for pw in ("password123", "Iloveyou1", "QWERTYUIOP"):
        resp = await client.post("/auth/register", json=_body("c@example.com", pw))
        assert resp.status == 422, pw
        body = await resp.json()
        assert body["errors"] == [{"field": "password", "message": "is too common; choose another"}]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"email":"\xff\xfe@example.com","password":"s3cret-passphrase","role":"CLIENT"}',
        b'{"email":"a@example.com","password":"\xc3(","role":"CLIENT"}',
    ],
)
async def test_invalid_utf8_is_a_400(client: Client, raw: bytes) -> None:
    for path in ("/auth/register", "/auth/login"):
        resp = await client.post(path, data=raw, headers={"Content-Type": "application/json"})
        assert resp.status == 400
        assert (await resp.json())["code"] == "malformed_json"


async def test_deep_nesting_is_a_400(client: Client) -> None:
    depth = 300_000
    raw = b'{"email":"a@example.com","x":' + b"[" * depth + b"]" * depth + b"}"
    resp = await client.post("/auth/login", data=raw, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    body = await resp.json()
    assert body["code"] == "malformed_json" and "nested" in body["detail"]


async def test_nul_in_a_string_is_a_422(client: Client) -> None:
    resp = await client.post(
        "/auth/login", json={"email": "a\u0000@example.com", "password": PASSWORD}
    )
    assert resp.status == 422
    assert (await resp.json())["errors"] == [
        {"field": "email", "message": "must not contain U+0000"}
    ]
    resp = await client.post("/auth/register", json=_body("b@example.com", "pass\u0000word-long"))
    assert resp.status == 422
    # The escape spelled out as text is not a NUL.
    resp = await client.post("/auth/login", json={"email": "a@example.com", "password": "\\u0000"})
    assert resp.status == 401
