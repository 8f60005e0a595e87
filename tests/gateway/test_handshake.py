"""Handshake and authentication: header, first frame, timeout, expiry, renewal, Origin."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import asyncpg
from aiohttp.test_utils import TestClient

from core.settings import Settings
from gateway import appkeys as gateway_keys
from tests.factories import bearer, token_for
from tests.gateway.conftest import MakeClient, connect, new_user, recv_close, recv_type


async def test_bearer_at_handshake_gets_hello(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    user_id, token = await new_user(db, gw_settings)
    ws = await gw.ws_connect("/ws", headers=bearer(token))
    hello = await recv_type(ws, "hello")
    assert hello["user_id"] == str(user_id)
    assert hello["role"] == "CLIENT"
    assert hello["server_time"].endswith("Z")
    await ws.close()


async def test_first_frame_auth(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    user_id, token = await new_user(db, gw_settings)
    ws = await gw.ws_connect("/ws")
    await ws.send_json({"type": "auth", "token": token})
    hello = await recv_type(ws, "hello")
    assert hello["user_id"] == str(user_id)
    await ws.close()


async def test_no_auth_within_timeout_closes_4401(make_client: MakeClient) -> None:
    client = await make_client(ws_auth_timeout_s=0.3)
    ws = await client.ws_connect("/ws")
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await recv_close(ws) == 4401
    assert 0.25 <= loop.time() - started < 2.0


async def test_first_frame_not_auth_closes_4401(gw: TestClient[Any, Any]) -> None:
    ws = await gw.ws_connect("/ws")
    await ws.send_json({"type": "presence", "status": "ONLINE"})
    assert await recv_close(ws) == 4401


async def test_a_close_before_authenticating_is_answered_and_leaves_nothing(
    gw: TestClient[Any, Any],
) -> None:
    gateway = gw.app[gateway_keys.GATEWAY]
    ws = await gw.ws_connect("/ws")
    assert await ws.close(code=4000, message=b"changed my mind")
    assert ws.close_code == 1000  # the server's answer to the close (autoclose is off)
    for _ in range(50):
        if len(gateway.opening) == 0:
            break
        await asyncio.sleep(0.02)
    assert len(gateway.opening) == 0 and not gateway.sessions


async def test_bad_token_in_first_frame_closes_4401(gw: TestClient[Any, Any]) -> None:
    ws = await gw.ws_connect("/ws")
    await ws.send_json({"type": "auth", "token": "not-a-jwt"})
    assert await recv_close(ws) == 4401


async def test_bad_token_at_handshake_is_401(gw: TestClient[Any, Any]) -> None:
    with_error = None
    try:
        await gw.ws_connect("/ws", headers=bearer("garbage"))
    except aiohttp.WSServerHandshakeError as exc:
        with_error = exc
    assert with_error is not None and with_error.status == 401


async def test_plain_get_without_upgrade_is_400(gw: TestClient[Any, Any]) -> None:
    resp = await gw.get("/ws")
    assert resp.status == 400
    assert (await resp.json())["code"] == "upgrade_required"


async def test_disallowed_origin_is_403(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    _user_id, token = await new_user(db, gw_settings)
    headers = {**bearer(token), "Origin": "https://evil.example"}
    try:
        await gw.ws_connect("/ws", headers=headers)
        raise AssertionError("handshake should fail")
    except aiohttp.WSServerHandshakeError as exc:
        assert exc.status == 403
    ok = await gw.ws_connect("/ws", headers={**bearer(token), "Origin": "http://localhost:3000"})
    assert (await recv_type(ok, "hello"))["role"] == "CLIENT"
    await ok.close()


async def test_expired_token_closes_4401(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    user_id, _ = await new_user(db, gw_settings)
    # Expiry is in whole seconds (exp = int(now) + ttl): a 2 s token has 1-2 s left,
    # enough for the handshake on a loaded machine, and none after 3.
    token = token_for(gw_settings, user_id, "CLIENT", ttl_s=2)
    ws = await connect(gw, token)
    assert await recv_close(ws, within=4.0) == 4401


async def test_in_band_renewal_extends_the_session(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    user_id, _ = await new_user(db, gw_settings)
    ws = await connect(gw, token_for(gw_settings, user_id, "CLIENT", ttl_s=2))
    await ws.send_json(
        {"type": "auth", "token": token_for(gw_settings, user_id, "CLIENT", ttl_s=60)}
    )
    renewed = await recv_type(ws, "auth.renewed")
    assert renewed["expires_at"] > 0
    # Past the first token's expiry the socket is still open and answering.
    await asyncio.sleep(3.2)
    await ws.send_json({"type": "bogus"})
    assert (await recv_type(ws, "error"))["code"] == "unknown_type"
    await ws.close()


async def test_renewal_with_another_users_token_is_refused(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    _a, token_a = await new_user(db, gw_settings)
    _b, token_b = await new_user(db, gw_settings)
    ws = await connect(gw, token_a)
    await ws.send_json({"type": "auth", "token": token_b})
    assert (await recv_type(ws, "error"))["code"] == "user_mismatch"
    await ws.send_json({"type": "auth", "token": "junk"})
    assert (await recv_type(ws, "error"))["code"] == "invalid_token"
    await ws.close()
