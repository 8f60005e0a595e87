"""While the gateway refuses new sockets, a handshake is refused at the door
(zendo/system/handshake_screen.py): the WebSocket route's own answer, written straight to
the socket, which a client reads whole before a clean end of stream. Anything else goes
on to aiohttp untouched."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from core.metrics import Metrics
from core.settings import Settings
from gateway import appkeys as gateway_keys
from gateway.arrivals import TRANSIT_S, Opening
from gateway.ws import REFUSED_DETAIL
from tests.factories import bearer
from tests.gateway.conftest import new_user
from tests.ports import free_port
from zendo.system.handshake_screen import HandshakeScreen
from zendo.system.listener import MultiAcceptSite

HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: zendo.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"Authorization: Bearer some.token.here\r\n\r\n"
)


@contextmanager
def connected(sent: bytes) -> Iterator[tuple[socket.socket, socket.socket]]:
    """(client, server-side connection) over loopback TCP, once `sent` has arrived."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname()[:2])
        conn, _ = listener.accept()
        try:
            client.sendall(sent)
            conn.settimeout(5)
            if sent:  # wait until it is all there to be peeked at
                while len(conn.recv(len(sent) + 1, socket.MSG_PEEK)) < len(sent):
                    pass
            conn.setblocking(False)  # as the listener hands it over
            client.settimeout(5)
            yield client, conn
        finally:
            client.close()
            conn.close()


def read_all(client: socket.socket) -> bytes:
    data = b""
    while chunk := client.recv(4096):  # a reset would raise here
        data += chunk
    return data


def full_opening() -> Opening:
    opening = Opening(max_opening=1)
    opening.begin()  # one socket still waiting for its hello: no room
    return opening


def screen_of(opening: Opening) -> tuple[HandshakeScreen, Metrics]:
    metrics = Metrics.create()
    return HandshakeScreen(opening, metrics.ws_refused, metrics.http_requests), metrics


def counted(metrics: Metrics) -> tuple[float | None, float | None]:
    registry = metrics.registry
    return (
        registry.get_sample_value("zendo_ws_refused_total"),
        registry.get_sample_value("zendo_http_requests_total", {"route": "/ws", "status": "503"}),
    )


def test_a_refused_handshake_gets_the_routes_answer_and_a_clean_close() -> None:
    screen, metrics = screen_of(full_opening())
    with connected(HANDSHAKE) as (client, conn):
        assert screen(conn) is True
        assert conn.fileno() == -1  # closed here: aiohttp never sees it
        answer = read_all(client)
    head, body = answer.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 503 Service Unavailable"
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
    assert headers["content-type"] == "application/problem+json"
    assert int(headers["content-length"]) == len(body)
    assert int(headers["retry-after"]) >= 1
    assert headers["cache-control"] == "no-store"
    assert headers["x-content-type-options"] == "nosniff"
    problem = orjson.loads(body)
    assert problem["status"] == 503 and problem["code"] == "overloaded"
    assert problem["type"].endswith("/problems/overloaded")
    assert problem["detail"] == REFUSED_DETAIL  # the route's own words
    assert counted(metrics) == (1.0, 1.0)


def test_successive_refusals_get_spaced_appointments() -> None:
    screen, _metrics = screen_of(full_opening())
    hints = []
    for _ in range(300):
        with connected(HANDSHAKE) as (client, conn):
            assert screen(conn)
            answer = read_all(client).decode()
        hints.append(int(answer.split("Retry-After: ")[1].split("\r\n")[0]))
    assert hints == sorted(hints) and hints[0] >= 1 and hints[-1] > hints[0]


def test_a_handshake_let_through_counts_until_it_reaches_the_route() -> None:
    clock = [100.0]
    opening = Opening(max_opening=1, clock=lambda: clock[0])
    screen, metrics = screen_of(opening)
    with connected(HANDSHAKE) as (_client, conn):
        peer = conn.getpeername()
        assert screen(conn) is False  # room: admitted at the door, on to aiohttp
        assert conn.recv(4096) == HANDSHAKE  # peeked at, never taken
    assert counted(metrics) == (0.0, 0.0)
    assert opening.full()  # the one on its way takes the room
    with connected(HANDSHAKE) as (_client, conn):
        assert screen(conn) is True  # so the next is refused at the door
    assert not opening.arrive(("192.0.2.1", 9))  # one the door never saw: judged at the route
    assert opening.arrive(peer)  # the first reached the route, admitted
    assert not opening.arrive(peer) and not opening.full()
    opening.expect(peer)
    clock[0] += TRANSIT_S + 0.01  # one that never arrives stops counting
    assert not opening.full() and not opening.arrive(peer)


@pytest.mark.parametrize(
    "sent",
    [
        b"GET /healthz HTTP/1.1\r\nHost: zendo.test\r\n\r\n",  # another route
        b"GET /wsx HTTP/1.1\r\nHost: zendo.test\r\n\r\n",
        b"POST /ws HTTP/1.1\r\nHost: zendo.test\r\nContent-Length: 0\r\n\r\n",
        HANDSHAKE[:40],  # a head still arriving
        HANDSHAKE + b"GET /healthz HTTP/1.1\r\n\r\n",  # bytes after the head
    ],
)
def test_anything_but_a_whole_handshake_goes_on_untouched(sent: bytes) -> None:
    screen, metrics = screen_of(full_opening())
    with connected(sent) as (_client, conn):
        assert screen(conn) is False
        assert conn.fileno() != -1
        assert conn.recv(4096) == sent
    assert counted(metrics) == (0.0, 0.0)


def test_a_connection_with_nothing_yet_is_looked_at_again() -> None:
    for opening in (full_opening(), Opening()):
        screen, _ = screen_of(opening)
        with connected(b"") as (_client, conn):
            assert screen(conn) is None  # the listener asks again once it is readable


async def test_a_websocket_client_reads_the_refusal_and_its_hint() -> None:
    """Through the listener, as `zendo serve` runs it: aiohttp's client (its request not
    there yet when the connection is accepted) gets a 503 with its Retry-After, and the
    app's route never runs."""
    routed: list[web.Request] = []

    async def ws(request: web.Request) -> web.Response:
        routed.append(request)
        return web.Response(status=500)

    app = web.Application()
    app.router.add_get("/ws", ws)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    screen, metrics = screen_of(full_opening())
    site = MultiAcceptSite(runner, "127.0.0.1", 0, screen=screen)
    await site.start()
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(3):
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await session.ws_connect(f"http://127.0.0.1:{site.port}/ws")
                assert refused.value.status == 503
                assert refused.value.headers is not None
                assert int(refused.value.headers["Retry-After"]) >= 1
        assert routed == []
        assert counted(metrics) == (3.0, 3.0)
    finally:
        await runner.cleanup()


async def test_the_server_screens_with_its_gateways_opening(gw: TestClient[Any, Any]) -> None:
    gateway = gw.app[gateway_keys.GATEWAY]
    screen = HandshakeScreen.of(gw.app)
    with connected(HANDSHAKE) as (_client, conn):
        peer = conn.getpeername()
        assert screen(conn) is False  # nobody waiting for a hello: admitted
    assert gateway.opening.arrive(peer)  # as the route does
    stuck = gateway.opening.begin()  # a socket upgraded long ago and still without hello
    await asyncio.sleep(gateway.opening.max_wait_s + 0.05)
    try:
        with connected(HANDSHAKE) as (client, conn):
            assert screen(conn) is True
            assert read_all(client).startswith(b"HTTP/1.1 503 ")
        assert gateway.metrics.ws_refused._value.get() == 1
    finally:
        gateway.opening.end(stuck)


async def test_the_route_admits_a_handshake_admitted_at_the_door(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    """Even if the process is full by the time it gets there; one the door never saw is
    judged at the route."""
    _uid, token = await new_user(db, gw_settings)
    opening = gw.app[gateway_keys.GATEWAY].opening
    port = free_port()
    opening.expect(("127.0.0.1", port))  # admitted at the door
    stuck = opening.begin()  # then the process fills up
    await asyncio.sleep(opening.max_wait_s + 0.05)
    try:
        assert opening.full()
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.1", port))
        async with aiohttp.ClientSession(connector=connector) as session:
            ws = await session.ws_connect(gw.make_url("/ws"), headers=bearer(token))
            assert (await ws.receive_json(timeout=5))["type"] == "hello"
            await ws.close()
        assert not opening.arrive(("127.0.0.1", port))  # arrived, taken off the expected
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await gw.ws_connect("/ws", headers=bearer(token))
        assert refused.value.status == 503
    finally:
        opening.end(stuck)
