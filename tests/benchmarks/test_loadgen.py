"""The load generator's `connect` and `storm` follow the README's reconnect rule
(benchmarks/loadgen.py): a handshake refused with 503, or a socket closed 1013 instead of
`hello`, is retried after the server's hint; a socket that says anything else first is
closed and tried again; a socket counts as held once it got its `hello`."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import WSCloseCode, web
from aiohttp.test_utils import TestServer

from benchmarks import loadgen


@contextlib.asynccontextmanager
async def serving(
    refusals: int, closes: int, junk: int = 0
) -> AsyncIterator[tuple[str, loadgen.Worker, dict[str, int]]]:
    """A server that refuses `refusals` handshakes (503), then closes `closes` sockets with
    1013, then sends `junk` sockets an error frame instead of `hello`, then says `hello`;
    its URL, a generator worker, and what the server saw. Both stopped on the way out."""
    seen = {"attempts": 0, "hellos": 0, "junk_closed_by_client": 0}

    async def ws(request: web.Request) -> web.StreamResponse:
        seen["attempts"] += 1
        if seen["attempts"] <= refusals:
            return web.json_response(
                {"code": "overloaded"}, status=503, headers={"Retry-After": "0"}
            )
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        if seen["attempts"] <= refusals + closes:
            await socket.close(
                code=WSCloseCode.TRY_AGAIN_LATER,
                message=json.dumps({"retry_after_ms": 10}).encode(),
            )
            return socket
        if seen["attempts"] <= refusals + closes + junk:
            await socket.send_str('{"type": "error", "code": "bad_frame"}')
            async for _msg in socket:
                pass
            seen["junk_closed_by_client"] += 1
            return socket
        seen["hellos"] += 1
        await socket.send_str('{"type": "hello"}')
        async for _msg in socket:
            pass
        return socket

    app = web.Application()
    app.router.add_get("/ws", ws)
    server = TestServer(app)
    await server.start_server()
    worker = loadgen.Worker()
    try:
        yield str(server.make_url("/ws")), worker, seen
    finally:
        for task in worker.readers:
            task.cancel()
        for socket in worker.sockets:
            await socket.close()
        if worker.session is not None:
            await worker.session.close()
        await server.close()


async def test_refused_handshakes_are_retried_until_hello() -> None:
    async with serving(refusals=2, closes=1) as (url, worker, seen):
        result = await worker.connect(url, ["token"])
        assert result == {"connected": 1, "failed": 0}
        assert seen == {"attempts": 4, "hellos": 1, "junk_closed_by_client": 0}
        assert len(worker.sockets) == 1 and not worker.sockets[0].closed


async def test_a_socket_upgraded_without_hello_is_closed_and_tried_again() -> None:
    async with serving(refusals=0, closes=0, junk=1) as (url, worker, seen):
        result = await worker.connect(url, ["token"])
        assert result == {"connected": 1, "failed": 0}
        assert seen == {"attempts": 2, "hellos": 1, "junk_closed_by_client": 1}


async def test_a_socket_refused_every_time_is_given_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loadgen, "RECONNECT_ATTEMPTS", 3)
    async with serving(refusals=10_000, closes=0) as (url, worker, seen):
        result = await worker.connect(url, ["token"])
        assert result == {"connected": 0, "failed": 1}
        assert seen["attempts"] == 3 and worker.sockets == []


async def test_the_storm_counts_refusals_and_errors_and_keeps_the_welcomed() -> None:
    async with serving(refusals=1, closes=1, junk=1) as (url, worker, seen):
        result = await worker.storm(url, ["token"], rate=100.0)
        assert {k: result[k] for k in ("refused", "errors", "failed")} == {
            "refused": 2,
            "errors": 1,
            "failed": 0,
        }
        assert len(result["hello_s"]) == 1 and len(worker.sockets) == 1
        assert seen == {"attempts": 4, "hellos": 1, "junk_closed_by_client": 1}
