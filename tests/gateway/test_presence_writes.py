"""Presence frames sent together reach Redis in a few round trips, and each still gets
its own answer: its effective status, or the error its own call met."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from core import redis_keys
from core.settings import Settings
from gateway import appkeys as gateway_keys
from gateway.presence_writes import PresenceWrites
from tests.gateway.conftest import connect, fix, new_artisan, recv_type

RECENT_MS = 60_000


async def test_presence_frames_sent_together_go_in_a_few_batches_each_answered(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    gateway = gw.app[gateway_keys.GATEWAY]
    artisans = [await new_artisan(db, gw_settings, specialty="LOCKSMITH") for _ in range(40)]
    sockets = [await connect(gw, token) for _id, token in artisans]
    try:
        located = sockets[:20]  # a recent fix: ONLINE; the others have none: OFFLINE
        for ws in located:
            await ws.send_json(fix())
        for artisan_id, _token in artisans[:20]:
            await _until_located(gateway.redis, artisan_id)
        before = gateway.presence.batches
        await asyncio.gather(
            *(ws.send_json({"type": "presence", "status": "ONLINE"}) for ws in sockets)
        )
        answers = [await recv_type(ws, "presence") for ws in sockets]
        assert [a["status"] for a in answers] == ["ONLINE"] * 20 + ["OFFLINE"] * 20
        assert gateway.presence.batches - before < 20  # 40 frames, not 40 round trips
        for artisan_id, _token in artisans[:20]:
            assert (
                await gateway.redis.hget(redis_keys.live_artisan(str(artisan_id)), "current_status")
                == "ONLINE"
            )

        # OFFLINE from all of them, together: each socket is told, each artisan is OFFLINE
        await asyncio.gather(
            *(ws.send_json({"type": "presence", "status": "OFFLINE"}) for ws in sockets)
        )
        answers = [await recv_type(ws, "presence") for ws in sockets]
        assert {a["status"] for a in answers} == {"OFFLINE"}
        for artisan_id, _token in artisans:
            key = redis_keys.live_artisan(str(artisan_id))
            assert await gateway.redis.hget(key, "current_status") == "OFFLINE"
    finally:
        for ws in sockets:
            await ws.close()


async def _until_located(redis: Redis, artisan_id: uuid.UUID) -> None:
    key = redis_keys.live_artisan(str(artisan_id))
    async with asyncio.timeout(3):
        while not await redis.hget(key, "ts"):  # noqa: ASYNC110 - polls Redis, no event
            await asyncio.sleep(0.02)


async def test_an_error_in_one_call_reaches_its_caller_only(redis: Redis) -> None:
    writes = PresenceWrites(lambda: redis)
    broken, fine = str(uuid.uuid4()), str(uuid.uuid4())
    await redis.set(redis_keys.live_artisan(broken), "not a hash")  # PRESENCE fails on it
    results = await asyncio.gather(
        writes.set(broken, "ONLINE", RECENT_MS),
        writes.set(fine, "OFFLINE", RECENT_MS),
        return_exceptions=True,
    )
    assert isinstance(results[0], Exception) and "WRONGTYPE" in str(results[0])
    assert results[1] == "OFFLINE"
    assert writes.batches == 1
    assert await redis.hget(redis_keys.live_artisan(fine), "current_status") == "OFFLINE"
    await writes.stop()


async def test_a_caller_gone_meanwhile_leaves_the_others_their_answers(redis: Redis) -> None:
    writes = PresenceWrites(lambda: redis)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    calls = [asyncio.create_task(writes.set(i, "OFFLINE", RECENT_MS)) for i in ids]
    await asyncio.sleep(0)  # queued, the batch not sent yet
    calls[1].cancel()
    done = await asyncio.gather(*calls, return_exceptions=True)
    assert done[0] == done[2] == "OFFLINE"
    assert isinstance(done[1], asyncio.CancelledError)
    await writes.stop()


async def test_redis_unreachable_is_an_error_for_every_waiting_caller() -> None:
    gone = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    writes = PresenceWrites(lambda: gone)
    try:
        results = await asyncio.gather(
            *(writes.set(str(uuid.uuid4()), "ONLINE", RECENT_MS) for _ in range(3)),
            return_exceptions=True,
        )
        assert all(isinstance(r, RedisConnectionError) for r in results), results
    finally:
        await writes.stop()
        await gone.aclose()


async def test_a_batch_past_the_chunk_takes_several_round_trips(redis: Redis) -> None:
    writes = PresenceWrites(lambda: redis, chunk=2)
    ids = [str(uuid.uuid4()) for _ in range(5)]
    assert (
        await asyncio.gather(*(writes.set(i, "OFFLINE", RECENT_MS) for i in ids)) == ["OFFLINE"] * 5
    )
    assert writes.batches == 3
    await writes.stop()
