"""Frame validation: junk, oversize, binary, wrong role; junk flood closes 1008."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from core.settings import Settings
from tests.gateway.conftest import connect, new_artisan, new_user, recv_close, recv_type


async def test_bad_frames_get_error_frames_and_the_socket_stays_open(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    _id, token = await new_artisan(db, gw_settings)
    ws = await connect(gw, token)
    cases = [
        ("{not json", "malformed_json"),
        ("[1, 2]", "invalid_frame"),
        ('{"type": "teleport"}', "unknown_type"),
        ('{"no_type": 1}', "unknown_type"),
        ('{"type": "location", "lat": "north", "lon": 2, "ts": 1}', "invalid_frame"),
        ('{"type": "presence", "status": "AWAY"}', "invalid_frame"),
        ('{"type": "offer.accept", "offer_id": "nope"}', "invalid_frame"),
    ]
    for raw, code in cases:
        await ws.send_str(raw)
        error = await recv_type(ws, "error")
        assert error["code"] == code, raw
        assert error["detail"]
    await ws.send_bytes(b"\x00\x01")
    assert (await recv_type(ws, "error"))["code"] == "binary_frame"
    assert not ws.closed
    await ws.close()


async def test_a_client_that_keeps_sending_junk_is_closed_1008(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    _id, token = await new_user(db, gw_settings)
    ws = await connect(gw, token)
    for _ in range(12):
        if ws.closed:
            break
        await ws.send_str("junk")
    assert await recv_close(ws) == 1008


async def test_oversize_frame_closes_1009(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    _id, token = await new_user(db, gw_settings)
    ws = await connect(gw, token)
    await ws.send_str('{"type":"auth","token":"' + "x" * (17 * 1024) + '"}')
    assert await recv_close(ws) == 1009


async def test_frame_just_under_the_limit_is_answered(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    _id, token = await new_user(db, gw_settings)
    ws = await connect(gw, token)
    await ws.send_str('{"type":"auth","token":"' + "x" * (15 * 1024) + '"}')
    assert (await recv_type(ws, "error"))["code"] == "invalid_token"
    await ws.close()


async def test_artisan_frames_from_a_client_are_forbidden(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    _id, token = await new_user(db, gw_settings)
    ws = await connect(gw, token)
    for frame in (
        {"type": "location", "lat": 48.8, "lon": 2.3, "ts": 1},
        {"type": "presence", "status": "ONLINE"},
        {"type": "offer.accept", "offer_id": "6f1c2a55-8a54-4c4e-9a39-0a3a4d0b9e10"},
        {"type": "offer.decline", "offer_id": "6f1c2a55-8a54-4c4e-9a39-0a3a4d0b9e10"},
    ):
        await ws.send_json(frame)
        assert (await recv_type(ws, "error"))["code"] == "forbidden"
    await ws.close()
