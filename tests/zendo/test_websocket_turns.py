"""WebSocket close reads and ends past a turn's share wait for a later turn
(zendo/system/request_screen.py): every frame still arrives, in its socket's order, the
close frame after the others, the end after the close; other frames are never held; an
HTTP request is served while the held closes wait."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from core.metrics import Metrics
from gateway.turns import PerTurn, Release
from zendo.admission import Admission
from zendo.headroom import JobRate
from zendo.system.listener import MultiAcceptSite
from zendo.system.request_screen import Door, screened

SOCKETS = 6
FRAMES = 20


@dataclass
class Served:
    site: MultiAcceptSite
    turns: PerTurn
    received: dict[int, list[str]] = field(default_factory=dict)
    closed: dict[int, int | None] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.site.port}"


class Withholding(PerTurn):
    """Refuses every turn's share until the test lets the held go (then admits all)."""

    def __init__(self) -> None:
        super().__init__(1)
        self.holders: list[Release] = []
        self.letting_go = False

    def admit(self) -> bool:
        return self.letting_go

    def hold(self, release: Release) -> None:
        self.held_total += 1
        self.holders.append(release)


@contextlib.asynccontextmanager
async def serve(turns: PerTurn) -> AsyncIterator[Served]:
    """Recording WebSocket handlers and a plain route behind the screened protocol."""
    app = web.Application()
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    state = Served(site=None, turns=turns)  # type: ignore[arg-type]  # set below

    async def ws(request: web.Request) -> web.WebSocketResponse:
        number = int(request.query["n"])
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        got = state.received.setdefault(number, [])
        async for msg in sock:
            if msg.type == WSMsgType.TEXT:
                got.append(msg.data)
        state.closed[number] = sock.close_code
        return sock

    async def ping(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_get("/ws", ws)
    app.router.add_get("/ping", ping)
    await runner.setup()
    assert runner.server is not None
    door = Door(
        Admission(max_in_flight=100), JobRate(busy_limit=0.0), Metrics.create().http_requests
    )
    state.site = MultiAcceptSite(
        runner, "127.0.0.1", 0, protocol_factory=screened(runner.server, door, turns)
    )
    await state.site.start()
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    """One read a turn."""
    async with serve(PerTurn(1)) as state:
        yield state


async def test_frames_and_held_closes_arrive_in_order_and_a_request_is_served_meanwhile(
    served: Served,
) -> None:
    async with aiohttp.ClientSession() as session:
        sockets = [await session.ws_connect(f"{served.url}/ws?n={n}") for n in range(SOCKETS)]
        for i in range(FRAMES):  # every socket speaks at once, frame after frame
            await asyncio.gather(*(s.send_str(f"{n}:{i}") for n, s in enumerate(sockets)))
        async with session.get(f"{served.url}/ping") as resp:
            assert resp.status == 200  # not held: HTTP is not WebSocket input
        await asyncio.gather(*(s.close() for s in sockets))
        for _ in range(200):
            if len(served.closed) == SOCKETS:
                break
            await asyncio.sleep(0.01)
    assert served.turns.held_total > 0  # one close a turn: most closes waited
    for n in range(SOCKETS):
        assert served.received[n] == [f"{n}:{i}" for i in range(FRAMES)]
        assert served.closed[n] == 1000  # the close frame too, after the others


async def upgraded_socket(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Socket 0, upgraded by hand (its frames are written raw)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /ws?n=0 HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await reader.readuntil(b"\r\n\r\n")  # 101
    return reader, writer


async def test_other_frames_pass_and_a_held_close_is_read_before_the_end() -> None:
    turns = Withholding()
    async with serve(turns) as served:
        _reader, writer = await upgraded_socket(served.site.port)
        # a masked text frame "bye" (mask 0): never held, it arrives
        writer.write(b"\x81\x83\x00\x00\x00\x00bye")
        await writer.drain()
        for _ in range(200):
            if served.received.get(0):
                break
            await asyncio.sleep(0.01)
        assert served.received[0] == ["bye"] and turns.held_total == 0
        # a masked close frame, code 1000 (mask 0): held; then the connection goes
        writer.write(b"\x88\x82\x00\x00\x00\x00\x03\xe8")
        await writer.drain()
        writer.close()
        await asyncio.sleep(0.2)
        assert turns.held_total == 1  # the close; the end, unread, waits behind it
        assert 0 not in served.closed
        turns.letting_go = True
        for release in turns.holders:
            release()
        for _ in range(200):
            if 0 in served.closed:
                break
            await asyncio.sleep(0.01)
        assert served.received[0] == ["bye"]
        assert served.closed[0] == 1000  # the held close was read (lost, it would be 1006)


async def test_a_held_malformed_close_is_refused_by_aiohttp_when_released() -> None:
    """A read that begins like a close frame but is not a valid one (a one-byte payload:
    a close carries none or a two-byte code) is held like a close, then answered as
    aiohttp answers any protocol error: close 1002, nothing delivered, the server still
    serving."""
    turns = Withholding()
    async with serve(turns) as served:
        reader, writer = await upgraded_socket(served.site.port)
        writer.write(b"\x88\x81\x00\x00\x00\x00\x07")  # masked (mask 0), one byte
        await writer.drain()
        await asyncio.sleep(0.2)
        assert turns.held_total == 1 and 0 not in served.closed
        turns.letting_go = True
        for release in turns.holders:
            release()
        reply = await asyncio.wait_for(reader.read(64), 5)
        assert reply[:1] == b"\x88" and reply[2:4] == (1002).to_bytes(2, "big")
        for _ in range(200):
            if 0 in served.closed:
                break
            await asyncio.sleep(0.01)
        assert 0 in served.closed  # the handler ended (its side says 1006: aborted)
        assert not served.received.get(0)
        writer.close()
        await writer.wait_closed()
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{served.url}/ping") as resp:
                assert resp.status == 200
