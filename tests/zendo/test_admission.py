"""Admission control: a process held behind answers 503 `overloaded` at once, with
Retry-After, to requests and WebSocket handshakes alike; health checks still answer."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from zendo.admission import ADMISSION, Admission


async def _overloaded(resp: Any) -> None:
    assert resp.status == 503
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    assert int(resp.headers["Retry-After"]) >= 1
    body = await resp.json()
    assert body["code"] == "overloaded"
    assert body["status"] == 503


@pytest.fixture
def held() -> asyncio.Event:
    return asyncio.Event()


@pytest.fixture
async def client_of(app: web.Application, aiohttp_client: Callable[..., Any], held: asyncio.Event):
    """The app with at most two requests in flight and a route that holds its request."""
    app[ADMISSION] = Admission(max_in_flight=2)

    async def slow(request: web.Request) -> web.Response:
        await held.wait()
        return web.json_response({"ok": True})

    app.router.add_get("/test/slow", slow)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return client


async def test_requests_past_the_bound_are_refused_at_once(
    client_of: TestClient[Any, Any], held: asyncio.Event
) -> None:
    client = client_of
    waiting = [asyncio.create_task(client.get("/test/slow")) for _ in range(2)]
    admission = client.app[ADMISSION]
    async with asyncio.timeout(5):
        while admission.in_flight < 2:  # noqa: ASYNC110 - polls a counter, no event
            await asyncio.sleep(0.01)
    async with asyncio.timeout(1):  # answered at once, not queued behind the others
        await _overloaded(await client.post("/auth/login", json={}))
        await _overloaded(await client.get("/ws"))  # before the upgrade
        health = await client.get("/healthz")
    assert health.status == 200
    held.set()
    for task in waiting:
        assert (await task).status == 200
    assert admission.in_flight == 0
    assert (await client.get("/test/slow")).status == 200
    assert admission.refused == 2


async def test_a_late_event_loop_sheds_new_work(client_of: TestClient[Any, Any]) -> None:
    client = client_of
    admission = client.app[ADMISSION]
    # The lag probe runs every 25 ms; hold the loop well past the bound so it says so.
    await asyncio.sleep(0.05)
    time.sleep(admission.max_loop_lag_s + 0.1)  # noqa: ASYNC251 - holding the loop is the point
    async with asyncio.timeout(1):  # the probe wakes late and records the lag
        while admission.loop_lag_s <= admission.max_loop_lag_s:  # noqa: ASYNC110
            await asyncio.sleep(0)
    await _overloaded(await client.get("/specialties"))
    assert (await client.get("/readyz")).status in (200, 503)  # still answered
    async with asyncio.timeout(5):  # the loop caught up: admitted again
        while admission.loop_lag_s > admission.max_loop_lag_s:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    assert (await client.get("/specialties")).status == 200


async def test_work_in_progress_is_admitted_past_the_bound_for_new_work(
    client_of: TestClient[Any, Any],
) -> None:
    """Shedding turns new jobs away before it strands the ones under way."""
    client = client_of
    admission = client.app[ADMISSION]  # at most 2 in flight (the fixture)
    admission.in_flight = 3  # as if 3 requests were being handled: behind, not twice
    await _overloaded(await client.post("/interventions", json={}))
    progress = await client.post(f"/interventions/{uuid.uuid4()}/status", json={})
    assert progress.status == 401  # admitted: it reached the auth check
    admission.in_flight = 4  # twice the bound: everything is shed
    await _overloaded(await client.post(f"/interventions/{uuid.uuid4()}/status", json={}))
    admission.in_flight = 0
