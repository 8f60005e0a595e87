"""Each dispatch policy, live, end to end over real sockets through the real gateway:
ZENDO_DISPATCH_POLICY changes who is offered what and when, and CONTRACT §4's
guarantees hold under every policy (one artisan per job, one job per artisan)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from core import appkeys
from core.settings import DISPATCH_POLICIES, Settings
from dispatch import appkeys as dispatch_keys
from tests.dispatcher.test_whole_story import Socket, connect, register_artisan
from tests.factories import bearer, create_user, token_for
from tests.world import FAST, poll_until
from zendo.app import create_app

# 0.1, 0.6, 1.1 and 1.6 km north of the job.
SPOTS = [(48.8576, 2.3522), (48.8621, 2.3522), (48.8666, 2.3522), (48.8711, 2.3522)]
JOB = {"specialty": "PLUMBER", "lat": 48.8566, "lon": 2.3522}


@pytest.fixture
def start_live(
    settings: Settings,
    clean_state: None,
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> Callable[[str], Awaitable[TestClient[Any, Any]]]:
    async def start(policy: str) -> TestClient[Any, Any]:
        app = create_app(
            settings.replace(ping_rate_per_s=20.0, dispatch_policy=policy, offer_timeout_s=3.0)
        )
        app[dispatch_keys.DISPATCHER].config = FAST
        return await aiohttp_client(app)

    return start


class Fleet:
    def __init__(self, http: TestClient[Any, Any]) -> None:
        self.http = http
        self.app = http.app
        self.ids: list[uuid.UUID] = []
        self.sockets: list[Socket] = []

    async def connect(self, admin: dict[str, str]) -> None:
        for n, (lat, lon) in enumerate(SPOTS):
            artisan_id, token = await register_artisan(self.http, admin, n)
            sock = await connect(self.http, token)
            ts = int(time.time() * 1000)
            await sock.send({"type": "location", "lat": lat, "lon": lon, "ts": ts})
            self.ids.append(artisan_id)
            self.sockets.append(sock)
        index = self.app[appkeys.MATCH_INDEX]
        await poll_until(
            lambda: all(
                (rec := index.get(str(a))) is not None and rec.status == "ONLINE" for a in self.ids
            )
        )

    def offered(self) -> list[int]:
        return [i for i, s in enumerate(self.sockets) if s.of("offer")]

    async def close(self) -> None:
        for sock in self.sockets:
            await sock.close()


@pytest.fixture
async def admin_of() -> AsyncIterator[Callable[[TestClient[Any, Any]], Awaitable[dict[str, str]]]]:
    async def make(http: TestClient[Any, Any]) -> dict[str, str]:
        settings = http.app[appkeys.SETTINGS]
        async with http.app[appkeys.PG_POOL].acquire() as db:
            admin_id = await create_user(db, role="ADMIN")
        return bearer(token_for(settings, admin_id, "ADMIN"))

    yield make


async def _client(http: TestClient[Any, Any]) -> tuple[str, Socket]:
    resp = await http.post(
        "/auth/register",
        json={
            "email": f"client-{uuid.uuid4().hex[:6]}@example.com",
            "password": "correct-horse-battery",
            "role": "CLIENT",
        },
    )
    token = (await resp.json())["access_token"]
    return token, await connect(http, token)


@pytest.mark.parametrize("policy", DISPATCH_POLICIES)
async def test_each_policy_dispatches_over_real_sockets_and_keeps_the_guarantees(
    policy: str,
    start_live: Callable[[str], Awaitable[TestClient[Any, Any]]],
    admin_of: Callable[[TestClient[Any, Any]], Awaitable[dict[str, str]]],
) -> None:
    http = await start_live(policy)
    assert http.app[dispatch_keys.DISPATCHER].policy.name == policy
    fleet = Fleet(http)
    await fleet.connect(await admin_of(http))
    token, client_sock = await _client(http)
    resp = await http.post("/interventions", json=JOB, headers=bearer(token))
    assert resp.status == 201
    job = await resp.json()

    # Who is asked first: the policy's choice.
    first = await fleet.sockets[0].wait("offer", within=4.0)
    assert first["intervention"]["id"] == job["id"]
    await asyncio.sleep(0.3)  # a wave sends its offers together
    if policy in ("staggered", "best_accept"):
        assert fleet.offered() == [0, 1, 2]  # a wave of 3
    else:
        assert fleet.offered() == [0]  # one at a time

    # Everyone offered accepts at once, over the socket (the farthest first): exactly
    # one wins; under best_accept the best-scored one, whoever answered first.
    offered = fleet.offered()
    for i in reversed(offered):
        offer = fleet.sockets[i].of("offer")[0]
        await fleet.sockets[i].send({"type": "offer.accept", "offer_id": offer["offer_id"]})
    status = await client_sock.wait(
        "intervention.status", lambda f: f["intervention"]["status"] == "ASSIGNED", within=5.0
    )
    winner = status["intervention"]["artisan_id"]
    assert winner in {str(fleet.ids[i]) for i in offered}
    if policy == "best_accept":
        assert winner == str(fleet.ids[0])
        held = [f for f in fleet.sockets[2].of("ack") if f["for"] == "offer.accept"]
        assert held and held[0]["intervention"]["status"] == "SEARCHING"
    async with http.app[appkeys.PG_POOL].acquire() as db:
        accepted = await db.fetch(
            "SELECT artisan_id FROM offers WHERE intervention_id = $1 AND status = 'ACCEPTED'",
            uuid.UUID(job["id"]),
        )
        assert [str(r["artisan_id"]) for r in accepted] == [winner]
        assert (
            await db.fetchval(
                "SELECT current_status FROM artisans WHERE user_id = $1", uuid.UUID(winner)
            )
            == "BUSY"
        )
    for i in offered:
        if str(fleet.ids[i]) != winner:
            result = await fleet.sockets[i].wait("offer.result", within=3.0)
            assert result["outcome"] == "taken"

    # A second job is never offered to the artisan who holds the first.
    resp = await http.post("/interventions", json=JOB, headers=bearer(token))
    assert resp.status == 201
    second = await resp.json()
    winner_index = [str(a) for a in fleet.ids].index(winner)
    got: list[int] = []
    for i, sock in enumerate(fleet.sockets):
        try:
            frame = await sock.wait(
                "offer",
                lambda f: f["intervention"]["id"] == second["id"],
                within=0.1 if got else 4.0,
            )
        except TimeoutError:
            continue
        got.append(i)
        assert frame["intervention"]["id"] == second["id"]
    assert got and winner_index not in got
    # The live metrics carry the policy.
    registry = http.app[appkeys.METRICS].registry
    labels = {"policy": policy, "outcome": "accepted"}
    assert registry.get_sample_value("zendo_dispatch_policy_offers_total", labels) == 1
    count = "zendo_dispatch_policy_first_offer_seconds_count"
    assert registry.get_sample_value(count, {"policy": policy}) == 2
    await client_sock.close()
    await fleet.close()
