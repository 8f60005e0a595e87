"""Job flooding (CONTRACT §8a): a client keeps at most ZENDO_MAX_OPEN_JOBS_PER_CLIENT
open interventions, and creates at most ZENDO_JOBS_PER_MIN_PER_CLIENT a minute."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import Any

import pytest

from core.settings import Settings
from tests.world import PARIS, World


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Offers that wait long enough for the jobs to stay open (SEARCHING) meanwhile."""
    return dataclasses.replace(settings, offer_timeout_s=30.0)


async def _artisans(world: World, n: int) -> None:
    """Someone to offer each job to, so that no job ends UNFULFILLED at once."""
    for i in range(n):
        await world.artisan(PARIS[0] + 0.001 * i, PARIS[1])


async def _post(world: World, client: uuid.UUID, **headers: str) -> Any:
    return await world.client.post(
        "/interventions",
        json={"specialty": "PLUMBER", "lat": PARIS[0], "lon": PARIS[1]},
        headers={**world.auth(client), **headers},
    )


async def _window(world: World, client: uuid.UUID) -> int:
    """How many of the client's job requests its row keeps (sql/014)."""
    count: int = await world.db.fetchval(
        "SELECT cardinality(recent_job_requests) FROM users WHERE id = $1", client
    )
    return count


async def test_forty_creates_at_once_open_three_jobs(world: World) -> None:
    await _artisans(world, 5)
    client = await world.user()
    responses = await asyncio.gather(*(_post(world, client) for _ in range(40)))
    statuses = sorted(r.status for r in responses)
    assert statuses.count(201) == world.settings.max_open_jobs_per_client == 3
    assert set(statuses) == {201, 429}
    refused = next(r for r in responses if r.status == 429)
    assert refused.content_type == "application/problem+json"
    body = await refused.json()
    # The per-minute limit (10) or the open-jobs cap, whichever came first.
    assert body["code"] in ("too_many_open_jobs", "rate_limited")
    assert int(refused.headers["Retry-After"]) >= 1
    open_jobs = await world.db.fetchval(
        "SELECT count(*) FROM interventions WHERE client_id = $1", client
    )
    assert open_jobs == 3
    assert await world.db.fetchval("SELECT open_jobs FROM users WHERE id = $1", client) == 3


async def test_a_closed_job_frees_its_slot_and_others_are_not_affected(world: World) -> None:
    await _artisans(world, 12)
    client = await world.user()
    jobs = [await world.request(client) for _ in range(3)]
    resp = await _post(world, client)
    assert resp.status == 429
    assert (await resp.json())["code"] == "too_many_open_jobs"
    # Another client is not affected.
    other = await world.user()
    await world.request(other)
    # Cancelling one frees a slot.
    cancel = await world.client.post(
        f"/interventions/{jobs[0]['id']}/cancel", headers=world.auth(client)
    )
    assert cancel.status == 200
    assert (await _post(world, client)).status == 201
    # A replayed Idempotency-Key at the cap still returns its job (nothing new is opened).
    first = await _post(world, await world.user(), **{"Idempotency-Key": "k1"})
    assert first.status == 201
    replay_client = uuid.UUID((await first.json())["client_id"])
    for _ in range(2):
        await world.request(replay_client)
    replay = await _post(world, replay_client, **{"Idempotency-Key": "k1"})
    assert replay.status == 200
    assert (await replay.json())["id"] == (await first.json())["id"]


async def test_unfulfilled_jobs_are_not_open(world: World) -> None:
    client = await world.user()
    # Nobody to offer to: each job ends UNFULFILLED.
    for _ in range(4):
        job = await world.request(client)
        await world.wait_status(job["id"], "UNFULFILLED")
    assert await world.db.fetchval("SELECT open_jobs FROM users WHERE id = $1", client) == 0


async def test_creations_per_minute_are_limited(world: World) -> None:
    await _artisans(world, 3)
    client = await world.user()
    limit = world.settings.jobs_per_min_per_client
    created = 0
    for _ in range(limit):
        job = await world.request(client)
        created += 1
        # Keep under the open-jobs cap: cancel at once.
        resp = await world.client.post(
            f"/interventions/{job['id']}/cancel", headers=world.auth(client)
        )
        assert resp.status == 200
    resp = await _post(world, client)
    assert resp.status == 429
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["code"] == "rate_limited"
    # The oldest request leaves the window within the minute.
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert created == limit
    # A refused request is not recorded: the window holds the `limit` created ones.
    assert await _window(world, client) == limit


async def test_creations_per_minute_hold_under_concurrent_requests(world: World) -> None:
    """One client's requests at once: the client's row serialises them, so exactly the
    per-minute limit's worth are recorded (the open-jobs cap refuses all but three of
    those) and every later one is 429 rate_limited."""
    await _artisans(world, 5)
    client = await world.user()
    limit = world.settings.jobs_per_min_per_client
    cap = world.settings.max_open_jobs_per_client
    responses = await asyncio.gather(*(_post(world, client) for _ in range(limit * 3)))
    codes = ["created" if r.status == 201 else (await r.json())["code"] for r in responses]
    assert codes.count("created") == cap
    assert codes.count("too_many_open_jobs") == limit - cap
    assert codes.count("rate_limited") == limit * 2
    assert await _window(world, client) == limit


async def test_the_request_window_slides(world: World) -> None:
    """Requests older than the window no longer count: with the limit's worth of them
    a minute old, a new job gets in; with them 30 s old, it is refused until the
    oldest leaves, and Retry-After says when."""
    await _artisans(world, 3)
    client = await world.user()
    limit = world.settings.jobs_per_min_per_client
    await world.db.execute(
        "UPDATE users SET recent_job_requests = array_fill(now() - interval '61 seconds',"
        " ARRAY[$2::int]) WHERE id = $1",
        client,
        limit,
    )
    assert (await _post(world, client)).status == 201
    assert await _window(world, client) == 1  # the expired ones were dropped
    await world.db.execute(
        "UPDATE users SET recent_job_requests = array_fill(now() - interval '30 seconds',"
        " ARRAY[$2::int]) WHERE id = $1",
        client,
        limit,
    )
    resp = await _post(world, client)
    assert resp.status == 429
    assert (await resp.json())["code"] == "rate_limited"
    assert 29 <= int(resp.headers["Retry-After"]) <= 31


async def test_a_job_is_created_with_redis_unreachable(world: World) -> None:
    """The per-minute limit lives on the client's row: creating a job needs no Redis
    before its statement (its pushes after the commit fail, logged, like any push)."""
    await _artisans(world, 1)
    client = await world.user()
    await world.cut_redis()
    resp = await _post(world, client)
    assert resp.status == 201
    job = await resp.json()
    assert job["status"] == "SEARCHING"
    assert await _window(world, client) == 1


async def test_the_open_jobs_count_runs_only_when_a_job_opens_or_closes(world: World) -> None:
    """sql/017: moving between two open statuses does not call the count's function;
    opening, closing and deleting a job do, and keep the count right."""
    client = await world.user()
    artisan = await world.artisan(online=False)
    db = world.db
    async with db.transaction():
        await db.execute("SET LOCAL track_functions = 'pl'")  # per-transaction call counts
        fn = await db.fetchval("SELECT 'interventions_count_open_jobs'::regproc::oid")

        async def calls_and_count() -> tuple[int, int]:
            calls = await db.fetchval("SELECT coalesce(pg_stat_get_xact_function_calls($1), 0)", fn)
            count = await db.fetchval("SELECT open_jobs FROM users WHERE id = $1", client)
            return calls, count

        job = await db.fetchval(
            """INSERT INTO interventions (client_id, specialty, location, start_code)
               VALUES ($1, 'PLUMBER', ST_MakePoint($2, $3)::geography, '1234') RETURNING id""",
            client,
            PARIS[1],
            PARIS[0],
        )
        assert await calls_and_count() == (1, 1)
        await db.execute(
            "UPDATE interventions SET status = 'ASSIGNED', artisan_id = $2 WHERE id = $1",
            job,
            artisan,
        )
        for status in ("EN_ROUTE", "ARRIVED", "IN_PROGRESS", "IN_PROGRESS"):
            await db.execute("UPDATE interventions SET status = $2 WHERE id = $1", job, status)
        assert await calls_and_count() == (1, 1)  # open to open: no call
        await db.execute("UPDATE interventions SET status = 'COMPLETED' WHERE id = $1", job)
        assert await calls_and_count() == (2, 0)
        await db.execute("UPDATE interventions SET status = 'COMPLETED' WHERE id = $1", job)
        assert await calls_and_count() == (2, 0)  # closed to closed: no call
        await db.execute("UPDATE interventions SET status = 'IN_PROGRESS' WHERE id = $1", job)
        assert await calls_and_count() == (3, 1)  # reopened (ops only): counted again
        await db.execute("DELETE FROM interventions WHERE id = $1", job)
        assert await calls_and_count() == (4, 0)
