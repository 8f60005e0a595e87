"""The state machine over HTTP: every illegal move is a 409, start code, cancel, rating."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest

from core import appkeys, redis_keys
from dispatch import appkeys as dispatch_keys
from dispatch.interventions import statemachine as sm
from gateway import live
from tests.helpers import live_state_written
from tests.world import World, poll_until

NEAR, MID = (48.8576, 2.3522), (48.8666, 2.3522)


async def assigned_job(world: World) -> tuple[uuid.UUID, uuid.UUID, dict[str, Any]]:
    artisan = await world.artisan(48.857, 2.3522)
    client = await world.user()
    job = await world.request(client)
    offer = await world.recorder.offer_for(artisan)
    assert (await world.accept(artisan, offer["offer_id"])).status == 200
    return client, artisan, job


async def move(world: World, user: uuid.UUID, job_id: str, status: str, **extra: Any) -> Any:
    return await world.client.post(
        f"/interventions/{job_id}/status",
        json={"status": status, **extra},
        headers=world.auth(user),
    )


def test_state_machine_table_matches_the_contract() -> None:
    chain = [sm.SEARCHING, sm.ASSIGNED, sm.EN_ROUTE, sm.ARRIVED, sm.IN_PROGRESS, sm.COMPLETED]
    for current, target in itertools.pairwise(chain):
        assert sm.is_allowed(current, target, "ARTISAN")
    for terminal in sm.TERMINAL:
        for target in sm.STATUSES:
            for role in ("CLIENT", "ARTISAN", "ADMIN", "SYSTEM"):
                assert not sm.is_allowed(terminal, target, role)
    assert not sm.is_allowed(sm.IN_PROGRESS, sm.CANCELLED, "CLIENT")
    assert not sm.is_allowed(sm.ASSIGNED, sm.ARRIVED, "ARTISAN")  # no skipping
    assert not sm.is_allowed(sm.SEARCHING, sm.UNFULFILLED, "CLIENT")
    with pytest.raises(sm.IllegalTransition):
        sm.check_transition(sm.COMPLETED, sm.SEARCHING, "ARTISAN")


async def _live_version(world: World, artisan: uuid.UUID) -> int:
    version: int = await world.db.fetchval(
        "SELECT live_version FROM artisans WHERE user_id = $1", artisan
    )
    return version


async def test_full_lifecycle_with_start_code_and_rating(world: World) -> None:
    client, artisan, job = await assigned_job(world)
    jid = job["id"]
    # Changes of the live state (accept, end of tracking, end of the job) each take a new,
    # higher live version (migration 011); the other moves leave it.
    versions = [await _live_version(world, artisan)]
    for status in ("EN_ROUTE", "ARRIVED"):
        resp = await move(world, artisan, jid, status)
        assert resp.status == 200 and (await resp.json())["status"] == status
    assert await _live_version(world, artisan) == versions[0] > 0
    wrong = "0000" if job["start_code"] != "0000" else "1111"
    resp = await move(world, artisan, jid, "IN_PROGRESS", start_code=wrong)
    assert resp.status == 422 and (await resp.json())["code"] == "wrong_start_code"
    resp = await move(world, artisan, jid, "IN_PROGRESS")
    assert resp.status == 422
    resp = await move(world, artisan, jid, "IN_PROGRESS", start_code=job["start_code"])
    assert resp.status == 200
    versions.append(await _live_version(world, artisan))
    # No cancelling once the work has started.
    resp = await world.client.post(f"/interventions/{jid}/cancel", headers=world.auth(client))
    assert resp.status == 409 and (await resp.json())["code"] == "illegal_transition"
    resp = await world.client.post(
        f"/interventions/{jid}/rating", json={"stars": 4}, headers=world.auth(client)
    )
    assert resp.status == 409 and (await resp.json())["code"] == "not_completed"
    resp = await move(world, artisan, jid, "COMPLETED")
    assert resp.status == 200
    assert (
        await world.db.fetchval("SELECT current_status FROM artisans WHERE user_id = $1", artisan)
        == "ONLINE"
    )
    versions.append(await _live_version(world, artisan))
    assert versions == sorted(set(versions))  # strictly increasing
    resp = await world.client.post(
        f"/interventions/{jid}/rating",
        json={"stars": 3, "comment": "ok"},
        headers=world.auth(client),
    )
    assert resp.status == 201
    assert (await resp.json())["artisan_rating"] == 3.0
    resp = await world.client.post(
        f"/interventions/{jid}/rating", json={"stars": 5}, headers=world.auth(client)
    )
    assert resp.status == 409 and (await resp.json())["code"] == "already_rated"
    row = await world.db.fetchrow(
        "SELECT rating, rating_count FROM artisans WHERE user_id = $1", artisan
    )
    assert (float(row["rating"]), row["rating_count"]) == (3.0, 1)
    events = await world.db.fetch(
        "SELECT from_status, to_status, actor_role FROM intervention_events"
        " WHERE intervention_id = $1 ORDER BY id",
        uuid.UUID(jid),
    )
    assert [tuple(e) for e in events] == [
        (None, "SEARCHING", "CLIENT"),
        ("SEARCHING", "ASSIGNED", "ARTISAN"),
        ("ASSIGNED", "EN_ROUTE", "ARTISAN"),
        ("EN_ROUTE", "ARRIVED", "ARTISAN"),
        ("ARRIVED", "IN_PROGRESS", "ARTISAN"),
        ("IN_PROGRESS", "COMPLETED", "ARTISAN"),
    ]
    # Every change reached the client with its start code.
    seen = [f["intervention"]["status"] for f in world.recorder.of(client, "intervention.status")]
    assert seen == ["ASSIGNED", "EN_ROUTE", "ARRIVED", "IN_PROGRESS", "COMPLETED"]
    artisan_seen = world.recorder.of(artisan, "intervention.status")
    assert all("start_code" not in f["intervention"] for f in artisan_seen)


async def test_rating_is_a_running_average(world: World) -> None:
    client, artisan, job = await assigned_job(world)
    await world.db.execute(
        "UPDATE artisans SET rating = 4.0, rating_count = 0 WHERE user_id = $1", artisan
    )
    await world.db.execute(
        "UPDATE interventions SET status = 'COMPLETED' WHERE id = $1", uuid.UUID(job["id"])
    )
    resp = await world.client.post(
        f"/interventions/{job['id']}/rating", json={"stars": 5}, headers=world.auth(client)
    )
    assert (await resp.json())["artisan_rating"] == 5.0
    # A second completed job for the same artisan: the average of 5 and 2.
    other = await world.db.fetchval(
        """INSERT INTO interventions (client_id, artisan_id, specialty, location, status, start_code)
           VALUES ($1, $2, 'PLUMBER', ST_MakePoint(2.35, 48.85)::geography, 'COMPLETED', '1234')
           RETURNING id""",
        client,
        artisan,
    )
    resp = await world.client.post(
        f"/interventions/{other}/rating", json={"stars": 2}, headers=world.auth(client)
    )
    assert (await resp.json())["artisan_rating"] == 3.5
    for bad in ({"stars": 0}, {"stars": 6}, {"stars": "5"}, {}):
        resp = await world.client.post(
            f"/interventions/{other}/rating", json=bad, headers=world.auth(client)
        )
        assert resp.status == 422


async def test_illegal_transitions_answer_409(world: World) -> None:
    client, artisan, job = await assigned_job(world)
    jid = job["id"]
    for status in ("ARRIVED", "IN_PROGRESS", "COMPLETED"):  # skipping steps
        resp = await move(world, artisan, jid, status, start_code=job["start_code"])
        assert resp.status == 409, status
    assert (await move(world, artisan, jid, "EN_ROUTE")).status == 200
    assert (await move(world, artisan, jid, "EN_ROUTE")).status == 409  # same state again
    resp = await move(world, artisan, jid, "SEARCHING")
    assert resp.status == 422  # not a status an artisan may ask for
    resp = await world.client.post(f"/interventions/{jid}/cancel", headers=world.auth(client))
    assert resp.status == 200
    for status in ("EN_ROUTE", "ARRIVED", "COMPLETED"):
        assert (await move(world, artisan, jid, status)).status in (404, 409)
    resp = await world.client.post(f"/interventions/{jid}/cancel", headers=world.auth(client))
    assert resp.status == 409


async def test_only_the_assigned_artisan_moves_the_job(world: World) -> None:
    client, artisan, job = await assigned_job(world)
    other = await world.artisan(online=False)
    assert (await move(world, other, job["id"], "EN_ROUTE")).status == 404
    resp = await world.client.post(
        f"/interventions/{job['id']}/status",
        json={"status": "EN_ROUTE"},
        headers=world.auth(client),
    )
    assert resp.status == 403
    stranger = await world.user()
    resp = await world.client.post(
        f"/interventions/{job['id']}/rating", json={"stars": 5}, headers=world.auth(stranger)
    )
    assert resp.status == 404
    resp = await world.client.post(
        f"/interventions/{job['id']}/cancel", headers=world.auth(stranger)
    )
    assert resp.status == 404
    assert (await move(world, artisan, job["id"], "EN_ROUTE")).status == 200


async def test_start_code_guesses_are_rate_limited(world: World) -> None:
    _client, artisan, job = await assigned_job(world)
    for status in ("EN_ROUTE", "ARRIVED"):
        assert (await move(world, artisan, job["id"], status)).status == 200
    wrong = [c for c in ("1111", "2222", "3333", "4444", "5555", "6666") if c != job["start_code"]]
    for code in wrong[:5]:
        resp = await move(world, artisan, job["id"], "IN_PROGRESS", start_code=code)
        assert resp.status == 422
    resp = await move(world, artisan, job["id"], "IN_PROGRESS", start_code=job["start_code"])
    assert resp.status == 429 and "Retry-After" in resp.headers
    assert await world.status(job["id"]) == "ARRIVED"


async def test_nobody_else_can_spend_the_assigned_artisans_guesses(world: World) -> None:
    _client, artisan, job = await assigned_job(world)
    for status in ("EN_ROUTE", "ARRIVED"):
        assert (await move(world, artisan, job["id"], status)).status == 200
    other = await world.artisan(online=False)
    assert (await move(world, other, job["id"], "IN_PROGRESS")).status == 404  # no code
    for _ in range(5):  # the right code, even: not theirs to use
        resp = await move(world, other, job["id"], "IN_PROGRESS", start_code=job["start_code"])
        assert resp.status == 404
    resp = await move(world, other, job["id"], "IN_PROGRESS", start_code=job["start_code"])
    assert resp.status == 429
    resp = await move(world, artisan, job["id"], "IN_PROGRESS", start_code=job["start_code"])
    assert resp.status == 200 and (await resp.json())["status"] == "IN_PROGRESS"


async def test_client_cancel_after_assignment_frees_the_artisan(world: World) -> None:
    client, artisan, job = await assigned_job(world)
    resp = await world.client.post(f"/interventions/{job['id']}/cancel", headers=world.auth(client))
    assert resp.status == 200 and (await resp.json())["status"] == "CANCELLED"
    assert (
        await world.db.fetchval("SELECT current_status FROM artisans WHERE user_id = $1", artisan)
        == "ONLINE"
    )
    frames = world.recorder.of(artisan, "intervention.status")
    assert frames[-1]["intervention"]["status"] == "CANCELLED"


async def test_artisan_withdrawal_puts_the_job_back_without_them(world: World) -> None:
    client, first, job = await assigned_job(world)
    second = await world.artisan(48.87, 2.3522)
    assert (await move(world, first, job["id"], "EN_ROUTE")).status == 200
    resp = await world.client.post(f"/interventions/{job['id']}/cancel", headers=world.auth(first))
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "SEARCHING" and body["artisan_id"] is None
    # Back in the index as ONLINE (their app would say so): still never asked again.
    world.index.upsert(str(first), 48.857, 2.3522, "PLUMBER", "STANDARD", 4.0, "ONLINE")
    offer = await world.recorder.offer_for(second)
    assert offer["intervention"]["id"] == job["id"]
    assert len(world.recorder.of(first, "offer")) == 1
    assert (await world.accept(second, offer["offer_id"])).status == 200
    row = await world.db.fetchrow(
        "SELECT status, artisan_id FROM interventions WHERE id = $1", uuid.UUID(job["id"])
    )
    assert tuple(row) == ("ASSIGNED", second)
    to = [
        e["to_status"]
        for e in await world.db.fetch(
            "SELECT to_status FROM intervention_events WHERE intervention_id = $1 ORDER BY id",
            uuid.UUID(job["id"]),
        )
    ]
    assert to == ["SEARCHING", "ASSIGNED", "EN_ROUTE", "SEARCHING", "ASSIGNED"]
    assert (
        world.recorder.of(client, "intervention.status")[-1]["intervention"]["status"] == "ASSIGNED"
    )


async def test_redis_unreachable_at_the_start_code_check_is_503_not_500(world: World) -> None:
    _client, artisan, job = await assigned_job(world)
    for status in ("EN_ROUTE", "ARRIVED"):
        assert (await move(world, artisan, job["id"], status)).status == 200
    await world.cut_redis()
    resp = await move(world, artisan, job["id"], "IN_PROGRESS", start_code=job["start_code"])
    assert resp.status == 503
    assert resp.content_type == "application/problem+json"
    assert resp.headers["Retry-After"] == "1"
    assert (await resp.json())["code"] == "unavailable"
    assert await world.status(job["id"]) == "ARRIVED"  # nothing half-done


class PaymentCalls:
    """Wraps the real payments service's hooks and records the order of the calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, payments: Any) -> None:
        self.calls: list[tuple[str, uuid.UUID]] = []
        for name in ("on_assigned", "on_cancelled", "on_completed"):
            monkeypatch.setattr(payments, name, self._recorder(name, getattr(payments, name)))

    def _recorder(self, name: str, real: Any) -> Any:
        async def record(intervention_id: uuid.UUID) -> None:
            self.calls.append((name, intervention_id))
            await real(intervention_id)

        return record


async def test_artisan_giving_the_job_back_releases_payment_tracking_and_live_state(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    payments = PaymentCalls(monkeypatch, world.app[dispatch_keys.PAYMENTS])
    redis = world.app[appkeys.REDIS]
    first = await world.artisan(*NEAR)
    second = await world.artisan(*MID)
    client = await world.user()
    job = await world.request(client)
    job_id = uuid.UUID(job["id"])
    offer = await world.recorder.offer_for(first)
    # Live state as the gateway keeps it for a connected artisan with a fresh fix.
    await live.connect_artisan(
        redis, str(first), specialty="PLUMBER", level="STANDARD", rating=4.0, verified=True
    )
    await redis.hset(
        redis_keys.live_artisan(str(first)),
        mapping={"lat": NEAR[0], "lon": NEAR[1], "ts": live.now_ms()},
    )
    assert (await world.accept(first, offer["offer_id"])).status == 200
    tracking_key = redis_keys.tracking(str(first))
    live_key = redis_keys.live_artisan(str(first))
    await poll_until(lambda: redis.exists(tracking_key))
    assert await redis.hget(live_key, "current_status") == "BUSY"

    resp = await world.client.post(f"/interventions/{job['id']}/cancel", headers=world.auth(first))
    assert resp.status == 200 and (await resp.json())["status"] == "SEARCHING"
    await live_state_written(world.app)
    assert not await redis.exists(tracking_key)  # the client stops seeing them
    assert await redis.hget(live_key, "current_status") == "ONLINE"  # set_available
    assert (
        await world.db.fetchval("SELECT current_status FROM artisans WHERE user_id = $1", first)
        == "ONLINE"
    )
    await poll_until(lambda: ("on_cancelled", job_id) in payments.calls)

    # Reassigned: on_assigned comes again, after the on_cancelled.
    offer2 = await world.recorder.offer_for(second)
    assert (await world.accept(second, offer2["offer_id"])).status == 200
    await poll_until(lambda: payments.calls.count(("on_assigned", job_id)) == 2)
    assert payments.calls == [
        ("on_assigned", job_id),
        ("on_cancelled", job_id),
        ("on_assigned", job_id),
    ]
    assert len(world.recorder.of(first, "offer")) == 1  # never asked again
