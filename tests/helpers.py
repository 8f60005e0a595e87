"""Helpers shared by the auth tests."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

PASSWORD = "s3cret-passphrase"


async def register(
    client: TestClient[Any, Any],
    *,
    email: str = "ada@example.com",
    password: str = PASSWORD,
    role: str = "CLIENT",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    resp = await client.post(
        "/auth/register",
        json={"email": email, "password": password, "role": role, **extra},
        headers=headers,
    )
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def login(
    client: TestClient[Any, Any], email: str, password: str = PASSWORD
) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/auth/login", json={"email": email, "password": password})
    body: dict[str, Any] = await resp.json()
    return resp.status, body
