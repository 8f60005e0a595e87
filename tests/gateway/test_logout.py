"""Logout closes the session's sockets with 4401, on whichever process holds them, and
a logged-out session's token opens no socket and renews none (issue 18)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.factories import bearer
from tests.gateway.conftest import MakeClient, connect, recv_close, recv_type
from tests.helpers import login, register


async def test_logout_closes_the_sessions_sockets_on_every_process(
    make_client: MakeClient,
) -> None:
    a, b = await make_client(), await make_client()  # two nodes sharing Redis
    reg = await register(a, email="lou@example.com")
    _, other = await login(a, "lou@example.com")
    here = await connect(a, reg["access_token"])
    there = await connect(b, reg["access_token"])
    kept = await connect(b, other["access_token"])  # another session of the same user
    # Both are read from before the logout: a socket left unread cannot answer its close
    # frame, and the server then drops it (the client would see 1006).
    closes = asyncio.gather(recv_close(here, within=5.0), recv_close(there, within=5.0))
    resp = await a.post("/auth/logout", json={"refresh_token": reg["refresh_token"]})
    assert resp.status == 204
    assert list(await closes) == [4401, 4401]  # typed a tuple, a list at run time
    # the other session's socket stays open and still gets frames
    await kept.send_json({"type": "auth", "token": other["access_token"]})
    assert (await recv_type(kept, "auth.renewed"))["expires_at"] > 0
    await kept.close()


async def test_a_logged_out_token_opens_no_socket_and_renews_none(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    reg = await register(client, email="kim@example.com")
    _, other = await login(client, "kim@example.com")
    ws = await connect(client, other["access_token"])
    resp = await client.post("/auth/logout", json={"refresh_token": reg["refresh_token"]})
    assert resp.status == 204
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/ws", headers=bearer(reg["access_token"]))
    assert refused.value.status == 401
    late = await client.ws_connect("/ws")
    await late.send_json({"type": "auth", "token": reg["access_token"]})
    assert await recv_close(late) == 4401
    # renewing a live socket with the dead session's token is refused; the socket stays
    await ws.send_json({"type": "auth", "token": reg["access_token"]})
    error = await recv_type(ws, "error")
    assert error["code"] == "session_revoked"
    await ws.send_json({"type": "auth", "token": other["access_token"]})
    assert (await recv_type(ws, "auth.renewed"))["expires_at"] > 0
    await ws.close()
