"""gateway/heartbeat.py: a server loop busy past the pong window keeps healthy sockets.

The server runs on uvloop in a thread of its own, as `zendo serve` does; its loop is
held right after its first ping (time.sleep in the ping's timer), while the client, on
the test's loop, answers at once. Heartbeat 1 s, so the pong window is 0.5 s.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import uvloop
from aiohttp import WSMsgType, web

from gateway.heartbeat import PatientWebSocketResponse, unread_bytes

HEARTBEAT_S = 1.0
STALL_S = 1.5  # three pong windows


@dataclass
class Served:
    """What the server saw of its one socket."""

    port: int = 0
    ready: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    texts: list[str] = field(default_factory=list)
    close_code: int | None = None
    error: str = ""


def _serve(make: Callable[[], web.WebSocketResponse], served: Served) -> None:
    """A one-socket echo server on uvloop whose loop stalls STALL_S after its first ping."""

    finished = asyncio.Event()  # of the server's loop: set when its socket is done

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = make()
        send_ping = ws._send_heartbeat
        pings = 0

        def ping_then_stall() -> None:
            nonlocal pings
            send_ping()
            pings += 1
            if pings == 1:
                time.sleep(STALL_S)  # the loop is busy: timers due, sockets unread

        ws._send_heartbeat = ping_then_stall  # type: ignore[method-assign]
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                served.texts.append(msg.data)
                await ws.send_str(msg.data)
        served.close_code = ws.close_code
        served.error = repr(ws.exception()) if ws.exception() else ""
        served.done.set()
        finished.set()
        return ws

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/ws", handler)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        served.port = runner.addresses[0][1]
        served.ready.set()
        await finished.wait()
        await runner.cleanup()

    uvloop.run(main())


async def _start(make: Callable[[], web.WebSocketResponse]) -> tuple[Served, threading.Thread]:
    served = Served()
    thread = threading.Thread(target=_serve, args=(make, served), daemon=True)
    thread.start()
    assert await asyncio.to_thread(served.ready.wait, 10)
    return served, thread


async def _talk_across_the_stall(served: Served) -> list[str]:
    """Connect and keep reading (aiohttp's client answers pings from `receive`), speak
    once the stall is over; the texts that came back."""
    got: list[str] = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"http://127.0.0.1:{served.port}/ws") as ws:

            async def read() -> None:
                async for msg in ws:
                    if msg.type is WSMsgType.TEXT:
                        got.append(msg.data)
                        return

            reader = asyncio.create_task(read())
            await asyncio.sleep(HEARTBEAT_S + STALL_S + 1.0)
            try:
                await ws.send_str("still here")
            except aiohttp.ClientConnectionResetError:  # the server dropped it
                pass
            await asyncio.wait_for(reader, 5)
    return got


async def test_a_stall_past_the_pong_window_keeps_a_peer_that_answered() -> None:
    served, thread = await _start(lambda: PatientWebSocketResponse(heartbeat=HEARTBEAT_S))
    got = await _talk_across_the_stall(served)
    assert await asyncio.to_thread(served.done.wait, 10)
    thread.join(10)
    assert got == ["still here"]
    assert served.texts == ["still here"]
    assert served.error == ""
    assert served.close_code == 1000  # the client's own close, not 1006


async def test_aiohttp_alone_drops_it() -> None:
    """What the class is for: if this starts failing, aiohttp reads before its verdict
    and gateway/heartbeat.py can go."""
    served, thread = await _start(lambda: web.WebSocketResponse(heartbeat=HEARTBEAT_S))
    got = await _talk_across_the_stall(served)
    assert await asyncio.to_thread(served.done.wait, 10)
    thread.join(10)
    assert got == []
    assert "No PONG" in served.error


async def test_a_peer_that_never_answers_is_still_dropped() -> None:
    served, thread = await _start(lambda: PatientWebSocketResponse(heartbeat=HEARTBEAT_S))
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"http://127.0.0.1:{served.port}/ws", autoping=False) as ws:
            # never reads: the server's ping stays unanswered
            assert await asyncio.to_thread(served.done.wait, 20)
            assert not ws.closed or ws.close_code is not None
    thread.join(10)
    assert "No PONG" in served.error
    assert served.texts == []


def test_unread_bytes_counts_what_the_kernel_holds() -> None:
    left, right = socket.socketpair()
    with left, right:
        assert unread_bytes(right) == 0
        left.sendall(b"hello")
        deadline = time.monotonic() + 5
        while unread_bytes(right) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert unread_bytes(right) == 5
        assert right.recv(5) == b"hello"
        assert unread_bytes(right) == 0
    assert unread_bytes(right) == 0  # closed: cannot say, so nothing
    assert unread_bytes(None) == 0
