"""Frames that once escaped the read loop (issue 18): very deep nesting and invalid
UTF-8 get an error frame and the socket stays a WebSocket, open."""

from __future__ import annotations

import asyncpg
from aiohttp import WSMsgType

from core.settings import Settings
from tests.gateway.conftest import MakeClient, connect, new_user, recv_type


async def test_deep_nesting_gets_an_error_frame_and_the_socket_stays_open(
    make_client: MakeClient, db: asyncpg.Connection, gw_settings: Settings
) -> None:
    gw = await make_client()
    _uid, token = await new_user(db, gw_settings)
    ws = await connect(gw, token)
    depth = 5000  # 10 KiB: under the 16 KiB frame limit
    await ws.send_str('{"type":"presence","x":' + "[" * depth + "]" * depth + "}")
    error = await recv_type(ws, "error")
    assert error["code"] == "malformed_json" and "nested" in error["detail"]
    # Still a working WebSocket: the next frame is answered as a frame.
    await ws.send_json({"type": "presence", "status": "ONLINE"})
    error = await recv_type(ws, "error")
    assert error["code"] == "forbidden"  # presence is for artisans
    assert not ws.closed


async def test_invalid_utf8_in_a_text_frame_never_becomes_an_http_answer(
    make_client: MakeClient, db: asyncpg.Connection, gw_settings: Settings
) -> None:
    gw = await make_client()
    _uid, token = await new_user(db, gw_settings)
    ws = await connect(gw, token)
    # A text frame whose payload is not UTF-8 (sent raw: the client library would refuse).
    await ws._writer.send_frame(b'{"type":"auth","token":"\xff\xfe"}', WSMsgType.TEXT)
    msg = await ws.receive(timeout=3)
    # Either an error frame (the socket stays open) or a WebSocket close: never HTTP.
    if msg.type is WSMsgType.TEXT:
        assert msg.json()["code"] == "malformed_json"
        await ws.send_json({"type": "presence", "status": "ONLINE"})
        assert (await recv_type(ws, "error"))["code"] == "forbidden"
    else:
        assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
        assert ws.close_code in (1007, 1008)
