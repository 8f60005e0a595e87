"""The one-statement hot paths: a job is created with its first offers, and an offer is
accepted, each in a single statement (no BEGIN/COMMIT round trips). What each statement
writes, and what it must not write when it cannot go through."""

from __future__ import annotations

import json
import uuid

import asyncpg

from dispatch.offers import repo as offers_repo
from tests.world import PARIS, World


async def _create(
    world: World, client: uuid.UUID, candidates: list[uuid.UUID], **kw: object
) -> list[asyncpg.Record]:
    args: dict[str, object] = {
        "client_id": client,
        "specialty": "PLUMBER",
        "lat": PARIS[0],
        "lon": PARIS[1],
        "address": None,
        "description": None,
        "start_code": "1234",
        "idempotency_key": None,
        "actor_role": "CLIENT",
        "artisan_ids": candidates,
        "distances_km": [0.5 + i for i in range(len(candidates))],
        "scores": [0.5 + i for i in range(len(candidates))],
        "wanted": 1,
        "timeout_s": 20.0,
        "max_open_jobs": 100,
        "max_requests": 100,
        "request_window_s": 60.0,
    }
    args.update(kw)
    return await offers_repo.create_job_with_offers(world.db, **args)  # type: ignore[arg-type]


async def test_create_writes_job_event_and_first_offer_with_its_deadline(world: World) -> None:
    engaged = await world.artisan(online=False)
    free = await world.artisan(online=False)
    other_job_client = await world.user()
    await _create(world, other_job_client, [engaged])  # engaged now holds a pending offer
    client = await world.user()

    rows = await _create(world, client, [engaged, free])

    assert len(rows) == 1 and rows[0]["priced"] and rows[0]["free"] == 1
    assert rows[0]["offer_artisan_id"] == free  # the engaged one is passed over
    job = await world.db.fetchrow(
        """SELECT i.status, i.price_amount, i.next_check_at, i.first_offer_at, o.expires_at
           FROM interventions i JOIN offers o ON o.intervention_id = i.id WHERE i.id = $1""",
        rows[0]["id"],
    )
    assert job["status"] == "SEARCHING" and job["price_amount"] > 0
    # The durable deadline is the offer's expiry (set in the same statement).
    assert abs((job["next_check_at"] - job["expires_at"]).total_seconds()) < 0.1
    assert job["first_offer_at"] is not None
    events = await world.db.fetch(
        "SELECT from_status, to_status FROM intervention_events WHERE intervention_id = $1",
        rows[0]["id"],
    )
    assert [tuple(e) for e in events] == [(None, "SEARCHING")]


async def test_create_with_nobody_free_is_due_for_a_step_within_a_second(world: World) -> None:
    unverified = await world.artisan(online=False, verified=False)
    client = await world.user()

    rows = await _create(world, client, [unverified, uuid.uuid4()])  # and an unknown id

    assert len(rows) == 1 and rows[0]["free"] == 0 and rows[0]["offer_id"] is None
    job = await world.db.fetchrow(
        """SELECT next_check_at - created_at AS due_in, first_offer_at FROM interventions
           WHERE id = $1""",
        rows[0]["id"],
    )
    assert 0.9 < job["due_in"].total_seconds() < 1.5
    assert job["first_offer_at"] is None
    assert await world.db.fetchval("SELECT count(*) FROM offers") == 0


async def test_create_replaying_a_key_writes_nothing_more(world: World) -> None:
    free = await world.artisan(online=False)
    client = await world.user()
    first = await _create(world, client, [free], idempotency_key="k-1")
    again = await _create(world, client, [free], idempotency_key="k-1")
    assert first[0]["id"] is not None and again[0]["id"] is None
    assert await world.db.fetchval("SELECT count(*) FROM interventions") == 1
    assert await world.db.fetchval("SELECT count(*) FROM offers") == 1
    assert await world.db.fetchval("SELECT count(*) FROM intervention_events") == 1


async def test_create_without_a_price_is_refused_and_writes_nothing(world: World) -> None:
    await world.artisan()
    client = await world.user()
    price = await world.db.fetchrow(
        "DELETE FROM specialty_prices WHERE specialty = 'PLUMBER' RETURNING *"
    )
    try:
        resp = await world.client.post(
            "/interventions",
            json={"specialty": "PLUMBER", "lat": PARIS[0], "lon": PARIS[1]},
            headers=world.auth(client),
        )
        assert resp.status == 422
        assert resp.content_type == "application/problem+json"
        assert "price" in await resp.text()
    finally:
        await world.db.execute(
            "INSERT INTO specialty_prices (specialty, amount, currency) VALUES ($1, $2, $3)",
            price["specialty"],
            price["amount"],
            price["currency"],
        )
    for table in ("interventions", "offers", "intervention_events"):
        assert await world.db.fetchval(f"SELECT count(*) FROM {table}") == 0
    assert world.recorder.frames == []


async def test_accept_writes_everything_at_once(world: World) -> None:
    artisan = await world.artisan()
    client = await world.user()
    job = await world.request(client)
    offer = await world.recorder.offer_for(artisan)

    resp = await world.accept(artisan, offer["offer_id"])

    assert resp.status == 200, await resp.text()
    row = await world.db.fetchrow(
        """SELECT i.status, i.artisan_id, i.next_check_at, a.current_status, o.status AS offer
           FROM interventions i JOIN artisans a ON a.user_id = i.artisan_id
           JOIN offers o ON o.intervention_id = i.id WHERE i.id = $1""",
        uuid.UUID(job["id"]),
    )
    assert tuple(row) == ("ASSIGNED", artisan, None, "BUSY", "ACCEPTED")
    events = await world.db.fetch(
        """SELECT from_status, to_status, actor_id, actor_role, data FROM intervention_events
           WHERE intervention_id = $1 ORDER BY id""",
        uuid.UUID(job["id"]),
    )
    *_, last = events
    assert tuple(last)[:4] == ("SEARCHING", "ASSIGNED", artisan, "ARTISAN")
    assert json.loads(last["data"]) == {"offer_id": offer["offer_id"]}
    statuses = world.recorder.of(client, "intervention.status")
    assert statuses[-1]["intervention"]["status"] == "ASSIGNED"


async def test_accept_of_a_job_no_longer_searching_writes_nothing(world: World) -> None:
    artisan = await world.artisan()
    client = await world.user()
    job = await world.request(client)
    offer = await world.recorder.offer_for(artisan)
    # Cancelled behind the offer's back (its offer left PENDING): the accept must see it.
    await world.db.execute(
        "UPDATE interventions SET status = 'CANCELLED' WHERE id = $1", uuid.UUID(job["id"])
    )

    resp = await world.accept(artisan, offer["offer_id"])

    assert resp.status == 409
    assert (await resp.json())["code"] == "offer_taken"
    offer_status = await world.db.fetchval(
        "SELECT status FROM offers WHERE id = $1", uuid.UUID(offer["offer_id"])
    )
    assert offer_status == "PENDING"
    busy = await world.db.fetchval(
        "SELECT current_status FROM artisans WHERE user_id = $1", artisan
    )
    assert busy != "BUSY"


async def test_the_candidate_check_probes_each_artisan_on_unanalyzed_tables(world: World) -> None:
    """A prepared statement planned on small tables keeps its plan as they grow (without
    autovacuum nothing analyzes them). Planned on empty ones, the check must still look
    up each candidate by index, not read every active job and open offer each time."""
    check = offers_repo._checked_candidates(ids="$1", distances="$2", scores="$3")
    async with world.db.transaction():
        await world.db.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await world.db.execute(
            f"PREPARE check_plan(uuid[], float8[], float8[]) AS WITH {check} SELECT * FROM checked"
        )
        rows = await world.db.fetch("EXPLAIN EXECUTE check_plan('{}', '{}', '{}')")
        await world.db.execute("DEALLOCATE check_plan")
    plan = "\n".join(r[0] for r in rows)
    assert "SubPlan" in plan  # the two lookups are there ...
    assert "hashed SubPlan" not in plan  # ... one probe per candidate
    assert "Seq Scan on interventions" not in plan
    assert "Seq Scan on offers" not in plan
    # an artisan's active job through the partial unique index: one entry, not their history
    assert "interventions_one_active_per_artisan" in plan


async def test_the_fair_policys_history_reads_each_candidates_offers_by_index(world: World) -> None:
    """The `fair` policy reads each candidate's answered offers of its window for every job
    it offers: by index (offers_artisan_answered_idx), never the whole offers table."""
    async with world.db.transaction():
        await world.db.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await world.db.execute("SET LOCAL enable_seqscan = off")  # what an index can serve
        await world.db.execute(
            f"PREPARE history_plan(uuid[], float8) AS {offers_repo.ARTISAN_HISTORY}"
        )
        rows = await world.db.fetch("EXPLAIN EXECUTE history_plan('{}', 3600)")
        await world.db.execute("DEALLOCATE history_plan")
    plan = "\n".join(r[0] for r in rows)
    assert "Seq Scan on offers" not in plan
    assert "offers_artisan_answered_idx" in plan
    assert "(created_at > (statement_timestamp()" in plan  # the window bounds the index scan
