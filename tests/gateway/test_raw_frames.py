"""The gateway writes text frames straight onto the transport (`session.text_frame`),
past aiohttp's writer. These tests pin what that rests on: the bytes are the ones
aiohttp's own writer produces for an uncompressed, unmasked server frame, and the
gateway's sockets never negotiate compression."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiohttp.http_websocket import WebSocketWriter
from aiohttp.test_utils import TestClient

from gateway.session import text_frame


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()

    def write(self, data: Any) -> None:
        self.data += data

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


class _Protocol:
    async def _drain_helper(self) -> None:
        return None


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65_535, 65_536, 200_000])
async def test_text_frame_is_what_aiohttps_writer_sends(size: int) -> None:
    payload = b"x" * size
    transport = _Transport()
    writer = WebSocketWriter(_Protocol(), transport, use_mask=False, compress=0)  # type: ignore[arg-type]
    await writer.send_frame(payload, WSMsgType.TEXT)
    assert bytes(transport.data) == text_frame(payload)


async def test_the_gateway_never_negotiates_compression(
    app: web.Application, aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]]
) -> None:
    """A compressed socket would need every frame deflated: raw frames would be invalid."""
    client = await aiohttp_client(app)
    async with client.ws_connect("/ws", compress=15) as sock:
        assert sock.compress == 0
        assert "Sec-WebSocket-Extensions" not in sock._response.headers
