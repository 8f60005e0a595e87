"""The start code against guessing: every wrong code is told to the client, every
fifth reissues the code to the client, and after fifteen the job takes no more."""

from __future__ import annotations

import uuid
from typing import Any

from core import appkeys, redis_keys
from dispatch.interventions.service import START_CODE_MAX_FAILURES, START_CODE_REISSUE_EVERY
from tests.interventions.test_lifecycle import assigned_job, move
from tests.world import World


def _wrong(code: str, i: int) -> str:
    guess = f"{i % 10_000:04d}"
    return guess if guess != code else f"{(i + 1) % 10_000:04d}"


async def _code(world: World, job_id: str) -> str:
    return str(
        await world.db.fetchval(
            "SELECT start_code FROM interventions WHERE id = $1", uuid.UUID(job_id)
        )
    )


async def test_wrong_codes_are_told_reissued_then_locked(world: World) -> None:
    client, artisan, job = await assigned_job(world)
    jid = job["id"]
    for status in ("EN_ROUTE", "ARRIVED"):
        assert (await move(world, artisan, jid, status)).status == 200
    redis = world.app[appkeys.REDIS]
    for i in range(1, START_CODE_MAX_FAILURES + 1):
        if i % START_CODE_REISSUE_EVERY == 1:
            # The 10-minute window of 5 guesses has passed.
            await redis.delete(redis_keys.rate_limit("start_code", f"{jid}:{artisan}"))
        code = await _code(world, jid)
        resp = await move(world, artisan, jid, "IN_PROGRESS", start_code=_wrong(code, i))
        assert resp.status == 422
        assert (await resp.json())["code"] == "wrong_start_code"

        def nth_failure(n: int = i) -> list[dict[str, Any]]:
            return [f for f in world.recorder.of(client, "start_code.failed")][n - 1 : n]

        told = await world.recorder.wait_for(nth_failure)
        frame = told[0]
        assert frame["intervention_id"] == jid and frame["failures"] == i
        reissue = i % START_CODE_REISSUE_EVERY == 0 and i < START_CODE_MAX_FAILURES
        assert frame["reissued"] is reissue
        assert frame["locked"] is (i == START_CODE_MAX_FAILURES)
        if reissue:
            assert frame["start_code"] == await _code(world, jid)
        else:
            assert "start_code" not in frame
        # The artisan never sees the code.
        assert all("start_code" not in f for f in world.recorder.of(artisan))
    # Locked: even the right code is refused now, and the client can still cancel.
    await redis.delete(redis_keys.rate_limit("start_code", f"{jid}:{artisan}"))
    resp = await move(world, artisan, jid, "IN_PROGRESS", start_code=await _code(world, jid))
    assert resp.status == 409
    assert (await resp.json())["code"] == "start_code_locked"
    assert await world.status(jid) == "ARRIVED"
    resp = await world.client.post(f"/interventions/{jid}/cancel", headers=world.auth(client))
    assert resp.status == 200


async def test_an_old_code_stops_working_once_reissued(world: World) -> None:
    client, artisan, job = await assigned_job(world)
    jid = job["id"]
    for status in ("EN_ROUTE", "ARRIVED"):
        assert (await move(world, artisan, jid, status)).status == 200
    old = job["start_code"]
    for i in range(START_CODE_REISSUE_EVERY):
        resp = await move(world, artisan, jid, "IN_PROGRESS", start_code=_wrong(old, i))
        assert resp.status == 422
    detail = (await resp.json())["detail"]
    assert "new one" in detail
    new = await _code(world, jid)
    await world.app[appkeys.REDIS].delete(redis_keys.rate_limit("start_code", f"{jid}:{artisan}"))
    if new != old:
        resp = await move(world, artisan, jid, "IN_PROGRESS", start_code=old)
        assert resp.status == 422
    resp = await move(world, artisan, jid, "IN_PROGRESS", start_code=new)
    assert resp.status == 200
    assert (await resp.json())["status"] == "IN_PROGRESS"
    # The right code is not a failure: the client saw exactly the wrong ones.
    failed = world.recorder.of(client, "start_code.failed")
    assert len(failed) == START_CODE_REISSUE_EVERY + (1 if new != old else 0)
