"""Gateway test helpers: apps with short gateway timings, sockets, frame readers."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from core.gateway_config import GatewayConfig
from core.settings import Settings
from gateway import appkeys as gateway_keys
from tests.factories import bearer, create_user, token_for

FAST_CONFIG = GatewayConfig(
    registry_refresh_s=0.3, registry_ttl_s=2.0, writebehind_interval_s=0.2, heartbeat_s=5.0
)
MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def gw_settings(settings: Settings) -> Settings:
    return settings.replace(ws_offline_grace_s=0.5, ws_auth_timeout_s=1.0, ping_rate_per_s=50.0)


@pytest.fixture
async def make_client(
    gw_settings: Settings, clean_state: None, aiohttp_client: Callable[..., Any]
) -> MakeClient:
    async def make(config: GatewayConfig = FAST_CONFIG, **changes: Any) -> TestClient[Any, Any]:
        from zendo.app import create_app

        changes.setdefault("node_id", secrets.token_hex(6))  # one node id per app
        app: web.Application = create_app(gw_settings.replace(**changes))
        app[gateway_keys.GATEWAY_CONFIG] = config
        client: TestClient[Any, Any] = await aiohttp_client(app)
        return client

    return make


@pytest.fixture
async def gw(make_client: MakeClient) -> TestClient[Any, Any]:
    return await make_client()


def now_ms() -> int:
    return int(time.time() * 1000)


async def new_artisan(
    db: asyncpg.Connection, settings: Settings, **kwargs: Any
) -> tuple[uuid.UUID, str]:
    user_id = await create_user(db, role="ARTISAN", **kwargs)
    return user_id, token_for(settings, user_id, "ARTISAN")


async def new_user(
    db: asyncpg.Connection, settings: Settings, role: str = "CLIENT"
) -> tuple[uuid.UUID, str]:
    user_id = await create_user(db, role=role)
    return user_id, token_for(settings, user_id, role)


async def connect(client: TestClient[Any, Any], token: str) -> aiohttp.ClientWebSocketResponse:
    ws = await client.ws_connect("/ws", headers=bearer(token))
    hello = await recv_type(ws, "hello")
    assert hello["role"] in ("ARTISAN", "CLIENT", "ADMIN")
    return ws


async def recv_type(
    ws: aiohttp.ClientWebSocketResponse, type_: str, within: float = 3.0, **match: Any
) -> dict[str, Any]:
    """The next frame of that type (and matching fields); other frames are skipped."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise AssertionError(f"no {type_} frame within {within}s")
        try:
            msg = await ws.receive(timeout=remaining)
        except TimeoutError as exc:
            raise AssertionError(f"no {type_} frame within {within}s") from exc
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"socket ended waiting for {type_}: {msg.type} {msg.data!r}")
        frame: dict[str, Any] = msg.json()
        if frame.get("type") == type_ and all(frame.get(k) == v for k, v in match.items()):
            return frame


async def recv_close(ws: aiohttp.ClientWebSocketResponse, within: float = 3.0) -> int | None:
    """Skip frames until the server closes; return the close code."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        msg = await ws.receive(timeout=max(0.01, deadline - asyncio.get_running_loop().time()))
        if msg.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.CLOSING,
        ):
            return ws.close_code
        if msg.type is aiohttp.WSMsgType.ERROR:
            return ws.close_code


def fix(
    lat: float = 48.8566, lon: float = 2.3522, ts: int | None = None, **extra: Any
) -> dict[str, Any]:
    return {"type": "location", "lat": lat, "lon": lon, "ts": ts or now_ms(), **extra}


async def eventually(
    check: Callable[[], Awaitable[Any]], within: float = 3.0, interval: float = 0.05
) -> Any:
    """Poll until `check()` returns a truthy value; that value, or AssertionError."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within}s (last: {value!r})")
        await asyncio.sleep(interval)
