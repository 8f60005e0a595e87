"""The whole story over real sockets through the real gateway, no stand-ins:
register, verify, connect, ping, request, offer, decline, timeout cascade, accept,
track, start with the code, complete, rate."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from core import appkeys
from core.settings import Settings
from dispatch import appkeys as dispatch_keys
from tests.factories import bearer, create_user, token_for
from tests.world import FAST, poll_until
from zendo.app import create_app


class Socket:
    """A WebSocket with a background reader that keeps every frame it receives."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.frames.append(msg.json())
                self._changed.set()

    async def wait(
        self,
        type_: str,
        match: Callable[[dict[str, Any]], bool] = lambda f: True,
        within: float = 5.0,
    ) -> dict[str, Any]:
        async with asyncio.timeout(within):
            while True:
                for frame in self.frames:
                    if frame["type"] == type_ and match(frame):
                        return frame
                self._changed.clear()
                await self._changed.wait()

    def of(self, type_: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == type_]

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_json(frame)

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


@pytest.fixture
async def live_client(
    settings: Settings,
    clean_state: None,
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app(settings.replace(ping_rate_per_s=20.0))
    app[dispatch_keys.DISPATCHER].config = FAST
    yield await aiohttp_client(app)


async def register_artisan(
    http: TestClient[Any, Any], admin: dict[str, str], n: int
) -> tuple[uuid.UUID, str]:
    resp = await http.post(
        "/auth/register",
        json={
            "email": f"artisan{n}-{uuid.uuid4().hex[:6]}@example.com",
            "password": "correct-horse-battery",
            "role": "ARTISAN",
            "specialty": "PLUMBER",
        },
    )
    assert resp.status == 201, await resp.text()
    grant = await resp.json()
    artisan_id = uuid.UUID(grant["user"]["id"])
    resp = await http.post(f"/admin/artisans/{artisan_id}/verify", headers=admin)
    assert resp.status == 200, await resp.text()
    return artisan_id, grant["access_token"]


async def connect(http: TestClient[Any, Any], token: str) -> Socket:
    ws = await http.ws_connect("/ws", headers=bearer(token))
    sock = Socket(ws)
    await sock.wait("hello")
    return sock


async def test_the_whole_story_over_real_sockets(live_client: TestClient[Any, Any]) -> None:
    http = live_client
    app = http.app
    settings = app[appkeys.SETTINGS]
    async with app[appkeys.PG_POOL].acquire() as db:
        admin_id = await create_user(db, role="ADMIN")
    admin = bearer(token_for(settings, admin_id, "ADMIN"))

    # Three plumbers 0.1, 1.1 and 2.2 km from the job register, get verified, connect, ping.
    spots = [(48.8576, 2.3522), (48.8666, 2.3522), (48.8766, 2.3522)]
    artisans = [await register_artisan(http, admin, n) for n in range(3)]
    sockets = [await connect(http, token) for _id, token in artisans]
    for sock, (lat, lon) in zip(sockets, spots, strict=True):
        await sock.send({"type": "location", "lat": lat, "lon": lon, "ts": int(time.time() * 1000)})
    index = app[appkeys.MATCH_INDEX]
    await poll_until(
        lambda: all(
            (rec := index.get(str(a))) is not None and rec.status == "ONLINE" for a, _t in artisans
        )
    )
    resp = await http.get(
        "/admin/match?lat=48.8566&lon=2.3522&specialty=PLUMBER&k=5", headers=admin
    )
    ranking = [c["artisan_id"] for c in await resp.json()]
    assert ranking == [str(a) for a, _t in artisans]

    # A client registers, connects and asks for a plumber.
    resp = await http.post(
        "/auth/register",
        json={
            "email": f"client-{uuid.uuid4().hex[:6]}@example.com",
            "password": "correct-horse-battery",
            "role": "CLIENT",
        },
    )
    client_token = (await resp.json())["access_token"]
    client_sock = await connect(http, client_token)
    resp = await http.post(
        "/interventions",
        json={"specialty": "PLUMBER", "lat": 48.8566, "lon": 2.3522, "address": "1 place X"},
        headers={**bearer(client_token), "Idempotency-Key": "story-1"},
    )
    assert resp.status == 201
    job = await resp.json()

    # The nearest declines over the socket: the next one is asked at once.
    offer1 = await sockets[0].wait("offer")
    assert offer1["intervention"]["id"] == job["id"]
    await sockets[0].send({"type": "offer.decline", "offer_id": offer1["offer_id"]})
    await sockets[0].wait("ack", lambda f: f["for"] == "offer.decline")
    offer2 = await sockets[1].wait("offer", within=1.0)
    # The second lets it time out: the third is asked, the second is told.
    offer3 = await sockets[2].wait("offer", within=3.0)
    result = await sockets[1].wait("offer.result")
    assert result == {"type": "offer.result", "offer_id": offer2["offer_id"], "outcome": "expired"}

    # The third accepts over the socket; the client hears of it.
    await sockets[2].send({"type": "offer.accept", "offer_id": offer3["offer_id"]})
    ack = await sockets[2].wait("ack", lambda f: f["for"] == "offer.accept")
    assert ack["intervention"]["status"] == "ASSIGNED"
    status = await client_sock.wait(
        "intervention.status", lambda f: f["intervention"]["status"] == "ASSIGNED"
    )
    assert status["intervention"]["artisan_id"] == str(artisans[2][0])
    assert status["intervention"]["start_code"] == job["start_code"]
    # BUSY reaches the index mirror through the events stream.
    await poll_until(lambda: index.get(str(artisans[2][0])).status == "BUSY", within=2)
    async with app[appkeys.PG_POOL].acquire() as db:
        assert (
            await db.fetchval(
                "SELECT current_status FROM artisans WHERE user_id = $1", artisans[2][0]
            )
            == "BUSY"
        )

    # Tracking: the artisan's next fix reaches the client with an ETA.
    await asyncio.sleep(0.3)
    await sockets[2].send(
        {"type": "location", "lat": 48.8760, "lon": 2.3522, "ts": int(time.time() * 1000)}
    )
    loc = await client_sock.wait("artisan.location")
    assert loc["intervention_id"] == job["id"] and loc["lat"] == pytest.approx(48.876)
    assert loc["eta_s"] > 0

    # On site: start with the client's code, complete, rate.
    artisan_auth = bearer(artisans[2][1])
    url = f"/interventions/{job['id']}/status"
    for step in ("EN_ROUTE", "ARRIVED"):
        assert (await http.post(url, json={"status": step}, headers=artisan_auth)).status == 200
    bad = "0000" if job["start_code"] != "0000" else "9999"
    resp = await http.post(
        url, json={"status": "IN_PROGRESS", "start_code": bad}, headers=artisan_auth
    )
    assert resp.status == 422
    resp = await http.post(
        url, json={"status": "IN_PROGRESS", "start_code": job["start_code"]}, headers=artisan_auth
    )
    assert resp.status == 200
    assert (await http.post(url, json={"status": "COMPLETED"}, headers=artisan_auth)).status == 200
    await client_sock.wait(
        "intervention.status", lambda f: f["intervention"]["status"] == "COMPLETED"
    )
    await sockets[2].wait(
        "intervention.status", lambda f: f["intervention"]["status"] == "COMPLETED"
    )
    resp = await http.post(
        f"/interventions/{job['id']}/rating", json={"stars": 5}, headers=bearer(client_token)
    )
    assert resp.status == 201
    resp = await http.post(
        f"/interventions/{job['id']}/rating", json={"stars": 1}, headers=bearer(client_token)
    )
    assert resp.status == 409
    seen = [f["intervention"]["status"] for f in client_sock.of("intervention.status")]
    assert seen == ["ASSIGNED", "EN_ROUTE", "ARRIVED", "IN_PROGRESS", "COMPLETED"]
    for sock in (*sockets, client_sock):
        await sock.close()
