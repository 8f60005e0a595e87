"""HTTP helpers shared by the tests: register and log in through the auth routes,
send files the way the apps do."""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient

from core.settings import Settings
from gateway import appkeys as gateway_keys

PASSWORD = "s3cret-passphrase"
StartApp = Callable[[Settings], Awaitable[TestClient[Any, Any]]]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(200)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(300)
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + b"1 0 obj\n<<>>\nendobj\n" * 20


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


async def send_upload(
    http: aiohttp.ClientSession, upload: dict[str, Any], data: bytes, content_type: str
) -> tuple[int, str]:
    """Send a file the way the apps do: PUT with headers, or POST multipart (fields, file)."""
    if upload["method"] == "PUT":
        headers = dict(upload["headers"])
        headers["Content-Type"] = content_type
        async with http.put(upload["url"], data=io.BytesIO(data), headers=headers) as resp:
            return resp.status, await resp.text()
    form = aiohttp.FormData()
    for name, value in upload["fields"].items():
        form.add_field(name, value)
    form.add_field("file", io.BytesIO(data), content_type=content_type, filename="upload")
    async with http.post(upload["url"], data=form) as resp:
        return resp.status, await resp.text()


async def live_state_written(app: web.Application) -> None:
    """Wait until the live-state writes `app` has sent to Redis have run: they are not
    awaited (gateway/redis_writer.py), and a Redis read sent right after an answer can
    run before them."""
    assert await app[gateway_keys.GATEWAY].writer.drained()
