"""Durable deadlines and several dispatchers: restarts and races on one database."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

from aiohttp.test_utils import TestClient

from core import appkeys
from dispatch import appkeys as dispatch_keys
from tests.world import FAST, FrameRecorder, World, build_app

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


def put_in_index(app: Any, rows: list[tuple[uuid.UUID, float, float]]) -> None:
    """Fill the app's index mirror as it starts: the mirror creates the index in its own
    start-up step, and this one (appended last) runs right after, with no await between
    it and the dispatcher poller's start, so the poller never sees it empty."""

    async def fill(app: Any) -> AsyncIterator[None]:
        for artisan_id, lat, lon in rows:
            app[appkeys.MATCH_INDEX].upsert(
                str(artisan_id), lat, lon, "PLUMBER", "STANDARD", 4.0, "ONLINE"
            )
        yield

    app.cleanup_ctx.append(fill)


async def test_a_restarted_dispatcher_resumes_the_cascade(
    world: World, aiohttp_client: ClientFactory
) -> None:
    first = await world.artisan(48.857, 2.3522)
    second = await world.artisan(48.866, 2.3522)
    client = await world.user()
    job = await world.request(client)
    offer = await world.recorder.offer_for(first)
    # The process dies (closes) while the offer is pending: its timer dies with it.
    await world.client.close()
    recorder = FrameRecorder()
    app2 = build_app(world.settings, recorder)
    put_in_index(app2, [(first, 48.857, 2.3522), (second, 48.866, 2.3522)])
    await aiohttp_client(app2)
    # The new process finds the deadline in PostgreSQL and cascades to the next one.
    offer2 = await recorder.offer_for(second, within=4)
    assert offer2["intervention"]["id"] == job["id"]
    assert recorder.of(first, "offer.result") == [
        {"type": "offer.result", "offer_id": offer["offer_id"], "outcome": "expired"}
    ]
    rows = await world.db.fetch("SELECT artisan_id, status FROM offers ORDER BY created_at")
    assert [tuple(r) for r in rows] == [(first, "EXPIRED"), (second, "PENDING")]


async def test_searching_jobs_left_behind_are_resumed_at_start_up(
    world: World, aiohttp_client: ClientFactory
) -> None:
    await world.client.close()  # the first process is gone
    artisan = await world.artisan(48.857, 2.3522, online=False)
    client = await world.user()
    # Created while no process could dispatch it (e.g. crashed right after the commit).
    job_id = await world.db.fetchval(
        """INSERT INTO interventions (client_id, specialty, location, start_code, next_check_at)
           VALUES ($1, 'PLUMBER', ST_MakePoint(2.3522, 48.8566)::geography, '1234', now())
           RETURNING id""",
        client,
    )
    recorder = FrameRecorder()
    app2 = build_app(world.settings, recorder)
    put_in_index(app2, [(artisan, 48.857, 2.3522)])
    await aiohttp_client(app2)
    offer = await recorder.offer_for(artisan, within=3)
    assert offer["intervention"]["id"] == str(job_id)


async def test_two_dispatchers_never_send_duplicate_offers(
    world: World, aiohttp_client: ClientFactory
) -> None:
    artisans = [
        (await world.artisan(48.85 + i * 0.002, 2.35, online=False), 48.85 + i * 0.002, 2.35)
        for i in range(12)
    ]
    settings = world.settings.replace(offer_timeout_s=0.3)
    recorders = [FrameRecorder(), FrameRecorder()]
    apps = [build_app(settings, r) for r in recorders]
    for app in apps:
        put_in_index(app, artisans)
        # One job per claim: the pollers race job by job.
        app[dispatch_keys.DISPATCHER].config = replace(FAST, claim_batch=1)
    await world.client.close()
    for app in apps:
        await aiohttp_client(app)

    def job(next_check: str) -> str:
        return f"""INSERT INTO interventions (client_id, specialty, location, start_code, next_check_at)
                   VALUES ($1, 'PLUMBER', ST_MakePoint(2.35, 48.86)::geography, '1234', {next_check})
                   RETURNING id"""

    def offered(recorder: FrameRecorder) -> bool:
        return any(f["type"] == "offer" for _u, f in recorder.frames)

    # First one job each process steps itself (a kick, as after a creation; not due for
    # the pollers), so both send offers whoever wins the pollers' races below: a poller
    # that claims a job loops at once, and can take all eight before the other wakes.
    for app in apps:
        job_id = await world.db.fetchval(job("now() + interval '1 hour'"), await world.user())
        app[dispatch_keys.DISPATCHER].kick(job_id)
    for recorder in recorders:
        await recorder.wait_for(functools.partial(offered, recorder), within=3)
    # Then eight due at once: both pollers race for every one.
    await world.db.executemany(job("now()"), [(await world.user(),) for _ in range(8)])

    worst_pending = 0
    for _ in range(60):  # ~1.5 s of cascading (0.3 s timeouts)
        per_job = await world.db.fetchval(
            "SELECT coalesce(max(n), 0) FROM (SELECT count(*) n FROM offers"
            " WHERE status = 'PENDING' GROUP BY intervention_id) t"
        )
        per_artisan = await world.db.fetchval(
            "SELECT coalesce(max(n), 0) FROM (SELECT count(*) n FROM offers"
            " WHERE status = 'PENDING' GROUP BY artisan_id) t"
        )
        worst_pending = max(worst_pending, per_job, per_artisan)
        await asyncio.sleep(0.025)
    assert worst_pending == 1
    sent = Counter(f["offer_id"] for r in recorders for _u, f in r.frames if f["type"] == "offer")
    assert sent and max(sent.values()) == 1  # no offer frame went out twice
    assert set(sent) <= {
        str(i) for i in await world.db.fetchval("SELECT array_agg(id) FROM offers")
    }
    assert all(offered(r) for r in recorders)
    pairs = await world.db.fetchval(
        "SELECT count(*) - count(DISTINCT (intervention_id, artisan_id)) FROM offers"
    )
    assert pairs == 0


async def test_claims_are_exclusive_leases(world: World, aiohttp_client: ClientFactory) -> None:
    await world.client.close()  # its poller would take part too
    client = await world.user()
    await world.db.executemany(
        """INSERT INTO interventions (client_id, specialty, location, start_code, next_check_at)
           VALUES ($1, 'PLUMBER', ST_MakePoint(2.35, 48.86)::geography, '1234', now())""",
        [(client,)] * 30,
    )
    settings = world.settings.replace(run_background=False)
    apps = [build_app(settings.replace(node_id=f"node-{i}"), None) for i in range(2)]
    for app in apps:
        await aiohttp_client(app)
    claims = await asyncio.gather(*(app[dispatch_keys.DISPATCHER].claim_due() for app in apps))
    a, b = (set(c) for c in claims)
    assert not a & b and len(a | b) == 30
    # Leased: nothing is due again until the lease ends.
    assert await apps[0][dispatch_keys.DISPATCHER].claim_due() == []
    assert await world.db.fetchval(
        "SELECT count(*) FROM interventions WHERE lease_owner IS NOT NULL"
    ) == len(a | b)
