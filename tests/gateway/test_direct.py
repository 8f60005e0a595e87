"""gateway/direct.py: a socket's fixes are handled as they are parsed, in order, and
everything else takes aiohttp's path unchanged."""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import os
import textwrap
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from aiohttp import WSMsgType, web
from aiohttp.http import WebSocketReader
from aiohttp.test_utils import TestClient

import gateway.ws
from core.settings import Settings
from gateway.direct import DirectQueue, DirectWebSocketResponse
from tests.gateway.conftest import connect, fix, new_artisan, now_ms, recv_type


class _Protocol:
    """What the queue asks of aiohttp's protocol: its flow control."""

    _reading_paused = False

    def pause_reading(self) -> None:
        self._reading_paused = True

    def resume_reading(self) -> None:
        self._reading_paused = False


def _frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (payloads under 126 bytes)."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


def _parser(direct: Callable[[bytes], bool] | None) -> tuple[DirectQueue, WebSocketReader]:
    protocol: Any = _Protocol()
    queue = DirectQueue(protocol, 2**16, loop=asyncio.get_running_loop())
    queue.direct = direct
    return queue, WebSocketReader(queue, 2**16, compress=False, decode_text=False)


async def test_a_taken_message_is_not_queued_and_a_left_one_is() -> None:
    taken: list[bytes] = []

    def direct(data: bytes) -> bool:
        if data.startswith(b"fix"):
            taken.append(data)
            return True
        return False

    queue, reader = _parser(direct)
    reader.feed_data(_frame(0x1, b"fix 1") + _frame(0x1, b"other") + _frame(0x1, b"fix 2"))
    # the second fix came after a message still queued: it waits behind it, in order
    assert taken == [b"fix 1"]
    assert [m.data for m in (await queue.read(), await queue.read())] == [b"other", b"fix 2"]
    reader.feed_data(_frame(0x1, b"fix 3"))  # nothing queued before it any more
    assert taken == [b"fix 1", b"fix 3"]
    assert not queue._buffer


async def test_control_frames_and_binary_never_reach_the_callback() -> None:
    seen: list[bytes] = []

    def direct(data: bytes) -> bool:
        seen.append(data)
        return True

    queue, reader = _parser(direct)
    reader.feed_data(_frame(0x9, b"p") + _frame(0xA, b"q") + _frame(0x2, b"bin"))
    reader.feed_data(_frame(0x8, b"\x03\xe8"))
    types = [(await queue.read()).type for _ in range(4)]
    assert types == [WSMsgType.PING, WSMsgType.PONG, WSMsgType.BINARY, WSMsgType.CLOSE]
    assert seen == []


async def test_without_a_callback_the_queue_is_aiohttps() -> None:
    queue, reader = _parser(None)
    reader.feed_data(_frame(0x1, b"fix"))
    assert (await queue.read()).data == b"fix"


def _body(function: Callable[..., Any]) -> str:
    """The statements of `function`, without its signature, comments or layout."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    definition = tree.body[0]
    assert isinstance(definition, ast.FunctionDef)
    return "\n".join(ast.dump(statement) for statement in definition.body)


def test_post_start_is_aiohttps_with_the_queue_swapped() -> None:
    # DirectWebSocketResponse._post_start repeats aiohttp's private method: if aiohttp
    # changes it, this fails and the copy must follow
    ours = _body(DirectWebSocketResponse._post_start)
    assert "DirectQueue" in ours
    assert ours.replace("DirectQueue", "WebSocketDataQueue") == _body(
        web.WebSocketResponse._post_start
    )


def _texts_through_the_read_loop(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The text frames that reach the read loop's `_on_text` from now on, in order."""
    texts: list[bytes] = []
    on_text = gateway.ws._on_text

    def counting(gw_: Any, session: Any, data: bytes) -> Any:
        texts.append(data)
        return on_text(gw_, session, data)

    monkeypatch.setattr(gateway.ws, "_on_text", counting)
    return texts


async def test_fixes_skip_the_read_loop_and_frames_keep_their_order(
    gw: TestClient[Any, Any],
    db: asyncpg.Connection,
    gw_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read_loop_texts = _texts_through_the_read_loop(monkeypatch)
    _id, token = await new_artisan(db, gw_settings)
    ws = await connect(gw, token)
    t0 = now_ms()
    for i in range(5):
        await ws.send_json(fix(48.8566 + i * 1e-4, 2.3522, t0 + i * 1000))
    await ws.send_json(fix(48.8566, 2.3522, t0 - 60_000))  # out of order: answered
    await ws.send_json({"type": "bogus"})
    assert (await recv_type(ws, "error"))["code"] == "out_of_order"
    assert (await recv_type(ws, "error"))["code"] == "unknown_type"
    # only the unknown frame went through the read loop
    assert [json.loads(text) for text in read_loop_texts] == [{"type": "bogus"}]
    await ws.close()


async def test_a_fix_that_fails_is_answered_and_the_socket_goes_on(
    gw: TestClient[Any, Any],
    db: asyncpg.Connection,
    gw_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    on_location = gateway.ws._on_location
    calls = 0

    def fails_once(*args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        on_location(*args)

    monkeypatch.setattr(gateway.ws, "_on_location", fails_once)
    _id, token = await new_artisan(db, gw_settings)
    ws = await connect(gw, token)
    t0 = now_ms()
    await ws.send_json(fix(48.8566, 2.3522, t0))
    assert (await recv_type(ws, "error"))["code"] == "internal_error"
    await ws.send_json(fix(48.8566, 2.3522, t0 + 1000))
    await ws.send_json(fix(48.8566, 2.3522, t0 - 60_000))
    assert (await recv_type(ws, "error"))["code"] == "out_of_order"  # the socket still works
    assert calls == 3 and not ws.closed
    await ws.close()


async def test_bad_frames_from_an_artisan_are_left_to_the_read_loop_and_answered(
    gw: TestClient[Any, Any],
    db: asyncpg.Connection,
    gw_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read_loop_texts = _texts_through_the_read_loop(monkeypatch)
    _id, token = await new_artisan(db, gw_settings)
    ws = await connect(gw, token)
    t0 = now_ms()
    bad = [
        ('{"type":"location","lat":48.85', "malformed_json"),
        ('{"type":"location","lat":48.85,"ts":1}', "invalid_frame"),
        (f'{{"type":"location","lat":91.0,"lon":2.3,"ts":{t0}}}', "out_of_range"),
    ]
    for text, code in bad:
        await ws.send_str(text)
        assert (await recv_type(ws, "error"))["code"] == code
    await ws.send_bytes(b"\x00")
    assert (await recv_type(ws, "error"))["code"] == "binary_frame"
    # what does not decode went to the read loop (the out-of-range fix decodes: the
    # validator answered it where it was parsed); a good fix after them is taken directly
    undecodable = [text.encode() for text, _code in bad[:2]]
    assert read_loop_texts == undecodable
    await ws.send_json(fix(48.8566, 2.3522, t0))
    await ws.send_json(fix(48.8566, 2.3522, t0 - 60_000))
    assert (await recv_type(ws, "error"))["code"] == "out_of_order"
    assert read_loop_texts == undecodable
    await ws.close()
