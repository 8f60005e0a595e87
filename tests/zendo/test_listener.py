"""MultiAcceptSite: every waiting connection is taken at one wake-up, and served."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvloop
from aiohttp import web

from zendo.system import listener
from zendo.system.listener import MultiAcceptSite

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def run(loop_name: str, scenario: Coroutine[Any, Any, None]) -> None:
    with asyncio.Runner(loop_factory=LOOPS[loop_name]) as runner:
        runner.run(scenario)


async def _ok(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _started_site(**kwargs: Any) -> tuple[web.AppRunner, MultiAcceptSite]:
    app = web.Application()
    app.router.add_get("/", _ok)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = MultiAcceptSite(runner, "127.0.0.1", 0, **kwargs)
    await site.start()
    return runner, site


@asynccontextmanager
async def _queued(
    n: int, **site_kwargs: Any
) -> AsyncIterator[tuple[MultiAcceptSite, list[socket.socket]]]:
    """A started site and `n` connections the kernel completed and queued while nobody
    called accept()."""
    runner, site = await _started_site(**site_kwargs)
    clients = [socket.create_connection(("127.0.0.1", site.port)) for _ in range(n)]
    try:
        yield site, clients
    finally:
        for client in clients:
            client.close()
        await runner.cleanup()


async def _get(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    await loop.sock_sendall(sock, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    data = b""
    while b"\r\n\r\nok" not in data:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_one_wake_up_takes_every_waiting_connection(loop_name: str) -> None:
    async def scenario() -> None:
        async with _queued(50) as (site, clients):
            site._accept_waiting(asyncio.get_running_loop())  # as the loop's reader would
            assert len(site._tasks) == 50
            assert site._sock is not None
            with pytest.raises(BlockingIOError):  # the kernel's queue is empty
                site._sock.accept()
            replies = await asyncio.gather(*(_get(c) for c in clients))
            assert all(r.startswith(b"HTTP/1.1 200") for r in replies)

    run(loop_name, scenario())


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_a_wake_up_takes_at_most_its_bound_and_the_rest_follow(loop_name: str) -> None:
    async def scenario() -> None:
        async with _queued(10, accepts_per_wake=4) as (site, clients):
            site._accept_waiting(asyncio.get_running_loop())
            assert len(site._tasks) == 4
            # The listening socket stays readable: the loop's reader takes the rest.
            replies = await asyncio.gather(*(_get(c) for c in clients))
            assert len(replies) == 10
            assert all(r.startswith(b"HTTP/1.1 200") for r in replies)

    run(loop_name, scenario())


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_a_screen_answers_its_connections_and_passes_the_others_on(loop_name: str) -> None:
    """A connection the screen answers (and closes) never reaches aiohttp; the ones it
    passes on are served; a screen that raises passes its connection on."""
    screened: list[bool] = []
    answers = iter((True, False, "raise"))

    def screen(conn: socket.socket) -> bool:
        answer = next(answers)
        if answer == "raise":
            screened.append(False)
            raise RuntimeError("a faulty screen")
        screened.append(bool(answer))
        if answer:
            conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
            conn.close()
        return bool(answer)

    async def scenario() -> None:
        async with _queued(3, screen=screen) as (site, clients):
            site._accept_waiting(asyncio.get_running_loop())
            assert screened == [True, False, False]
            assert len(site._tasks) == 2  # only the connections passed on were adopted
            clients[0].settimeout(5)
            assert clients[0].recv(4096).startswith(b"HTTP/1.1 503")
            assert clients[0].recv(4096) == b""  # closed by the screen
            replies = await asyncio.gather(*(_get(c) for c in clients[1:]))
            assert all(r.startswith(b"HTTP/1.1 200") for r in replies)

    run(loop_name, scenario())


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_a_connection_the_screen_cannot_tell_yet_is_screened_once_readable(
    loop_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """None: nothing to judge yet. The site looks again when the request arrives, and
    hands a connection that stays silent to aiohttp after SCREEN_WAIT_S; stopping the
    site closes the ones still waiting."""
    monkeypatch.setattr(listener, "SCREEN_WAIT_S", 0.3)
    looked: list[bytes] = []

    def screen(conn: socket.socket) -> bool | None:
        try:
            head = conn.recv(4096, socket.MSG_PEEK)
        except BlockingIOError:
            return None
        looked.append(head)
        if head.startswith(b"GET /refused"):
            conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
            conn.recv(4096)
            conn.close()
            return True
        return False

    async def scenario() -> None:
        async with _queued(3, screen=screen) as (site, clients):
            loop = asyncio.get_running_loop()
            site._accept_waiting(loop)
            assert len(site._unscreened) == 3 and not site._tasks  # nothing sent yet
            clients[0].sendall(b"GET /refused HTTP/1.1\r\nHost: t\r\n\r\n")
            clients[0].settimeout(5)
            answer = await loop.run_in_executor(None, clients[0].recv, 4096)
            assert answer.startswith(b"HTTP/1.1 503")
            assert looked == [b"GET /refused HTTP/1.1\r\nHost: t\r\n\r\n"]
            assert (await _get(clients[1])).startswith(b"HTTP/1.1 200")  # judged, passed on
            assert len(site._unscreened) == 1
            await asyncio.sleep(0.5)  # the silent one goes to aiohttp, which serves it
            assert not site._unscreened
            assert (await _get(clients[2])).startswith(b"HTTP/1.1 200")
        async with _queued(1, screen=screen) as (site, clients):
            site._accept_waiting(asyncio.get_running_loop())
            assert len(site._unscreened) == 1
            await site.stop()
            assert not site._unscreened
            clients[0].settimeout(5)
            assert clients[0].recv(4096) == b""  # closed by the stop

    run(loop_name, scenario())


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_stop_closes_the_listening_socket(loop_name: str) -> None:
    async def scenario() -> None:
        runner, site = await _started_site()
        port = site.port
        assert site.name == f"http://127.0.0.1:{port}"
        await runner.cleanup()  # stops every site
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()

    run(loop_name, scenario())


def test_a_port_in_use_fails_at_start() -> None:
    async def scenario() -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            app = web.Application()
            runner = web.AppRunner(app, handle_signals=False)
            await runner.setup()
            site = MultiAcceptSite(runner, "127.0.0.1", taken.getsockname()[1])
            try:
                with pytest.raises(OSError, match="in use"):
                    await site.start()
            finally:
                await runner.cleanup()

    run("uvloop", scenario())


def test_sites_with_reuse_port_share_one_port_and_both_serve() -> None:
    """As the workers of `zendo serve --workers N` do: the kernel spreads the
    connections among the listeners (by a hash of the connection's addresses)."""

    async def scenario() -> None:
        runners: list[web.AppRunner] = []
        sites: list[MultiAcceptSite] = []
        port = 0
        for name in ("a", "b"):

            async def who(_request: web.Request, name: str = name) -> web.Response:
                return web.Response(text=name)

            app = web.Application()
            app.router.add_get("/", who)
            runner = web.AppRunner(app, handle_signals=False, access_log=None)
            await runner.setup()
            runners.append(runner)
            site = MultiAcceptSite(runner, "127.0.0.1", port, reuse_port=True)
            await site.start()
            sites.append(site)
            port = site.port
        try:
            assert sites[0].port == sites[1].port
            seen: set[bytes] = set()
            loop = asyncio.get_running_loop()
            for _ in range(200):  # each one alone: 2**-199 odds of a single listener
                with socket.create_connection(("127.0.0.1", port)) as sock:
                    sock.setblocking(False)
                    await loop.sock_sendall(sock, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                    data = b""
                    while not data.endswith((b"\r\n\r\na", b"\r\n\r\nb")):
                        chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
                        assert chunk, f"closed after {data!r}"
                        data += chunk
                    seen.add(data[-1:])
                if seen == {b"a", b"b"}:
                    break
            assert seen == {b"a", b"b"}
            # Without the option the port is refused while they listen on it.
            plain = MultiAcceptSite(runners[0], "127.0.0.1", port)
            with pytest.raises(OSError, match="in use"):
                await plain.start()
        finally:
            for runner in runners:
                await runner.cleanup()

    run("uvloop", scenario())


_LOW_FD_SERVER = """
import asyncio, os, resource, sys
import uvloop
from aiohttp import web
from zendo.system import listener

listener.RETRY_AFTER_S = 0.2

async def ok(_request):
    return web.Response(text="ok")

async def main():
    app = web.Application()
    app.router.add_get("/", ok)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = listener.MultiAcceptSite(runner, "127.0.0.1", 0)
    await site.start()
    highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 4, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    print(site.port, flush=True)
    await asyncio.Event().wait()

uvloop.run(main())
"""


def test_descriptor_exhaustion_pauses_accepting_then_resumes(tmp_path: Any) -> None:
    """Out of descriptors, the queued connections wait in the kernel: one warning per
    pause (no spinning on a readable socket), and they are served once fds free up."""
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-c", _LOW_FD_SERVER], stdout=subprocess.PIPE, stderr=log, text=True
        )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())

        async def scenario() -> None:
            clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(12)]
            try:
                replies = await asyncio.gather(
                    *(asyncio.wait_for(_get(c), 1.5) for c in clients), return_exceptions=True
                )
                served = [c for c, r in zip(clients, replies, strict=True) if isinstance(r, bytes)]
                waiting = [
                    c for c, r in zip(clients, replies, strict=True) if not isinstance(r, bytes)
                ]
                assert served and waiting, replies  # a few fds to spare, not twelve
                for c in served:  # frees the server's descriptors
                    c.close()
                clients = waiting
                late = [await _get(c) for c in waiting[: len(served)]]
                assert all(r.startswith(b"HTTP/1.1 200") for r in late)
            finally:
                for c in clients:
                    c.close()

        started = time.monotonic()
        run("uvloop", scenario())
        elapsed = time.monotonic() - started
    finally:
        server.terminate()
        server.wait(10)
        if server.stdout is not None:
            server.stdout.close()
    warnings = log_path.read_text().count("accept: ")
    # One warning per 0.2 s pause at most: a spinning loop would log thousands.
    assert 1 <= warnings <= elapsed / 0.2 + 2, warnings
