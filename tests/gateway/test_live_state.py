"""The outbox's live-state changes and remote pushes: one pipeline per commit, also after
Redis lost its script cache."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from core import appkeys, redis_keys
from core.effects import MarkAvailable, MarkBusy, ProfileChanged, TrackingStart, TrackingStop
from core.settings import Settings
from gateway import live
from tests.gateway.conftest import eventually
from tests.helpers import live_state_written


async def test_changes_apply_in_one_pipeline_even_after_a_script_flush(
    gw: TestClient[Any, Any],
) -> None:
    redis = gw.app[appkeys.REDIS]
    state = gw.app[appkeys.LIVE_STATE]
    aid = str(uuid.uuid4())
    await live.connect_artisan(
        redis, aid, specialty="PLUMBER", level="STANDARD", rating=4.0, verified=True
    )
    await redis.script_flush()  # as after a Redis restart
    job, client = uuid.uuid4(), uuid.uuid4()
    await state.apply(
        [
            MarkBusy(uuid.UUID(aid)),
            TrackingStart(uuid.UUID(aid), job, client, 48.8, 2.3),
            ProfileChanged(uuid.UUID(aid), rating=4.8),
        ]
    )
    await live_state_written(gw.app)
    fields = await redis.hmget(redis_keys.live_artisan(aid), ["current_status", "trk", "rating"])
    assert fields == ["BUSY", "1", "4.8"]
    assert await redis.hget(redis_keys.tracking(aid), "client_id") == str(client)
    await state.apply([TrackingStop(uuid.UUID(aid)), MarkAvailable(uuid.UUID(aid))])
    await live_state_written(gw.app)
    assert not await redis.exists(redis_keys.tracking(aid))
    assert await redis.hget(redis_keys.live_artisan(aid), "trk") is None
    # No fix yet, so not ONLINE: available means OFFLINE until the next fix.
    assert await redis.hget(redis_keys.live_artisan(aid), "current_status") == "OFFLINE"


async def test_remote_pushes_ride_in_the_same_pipeline_even_after_a_script_flush(
    gw: TestClient[Any, Any], gw_settings: Settings
) -> None:
    """A commit that moves live state and pushes to a user held by another process: both
    in one round trip, the publish first; a publish that cannot be made is counted."""
    redis = gw.app[appkeys.REDIS]
    state = gw.app[appkeys.LIVE_STATE]
    notifier = gw.app[appkeys.NOTIFIER]
    aid, client = str(uuid.uuid4()), uuid.uuid4()
    await live.connect_artisan(
        redis, aid, specialty="PLUMBER", level="STANDARD", rating=4.0, verified=True
    )
    await redis.zadd(redis_keys.user_nodes(str(client)), {"other": live.now_ms() + 60_000})
    listener = Redis.from_url(gw_settings.redis_url)
    pubsub = listener.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(redis_keys.node_channel("other"))
        await redis.script_flush()  # as after a Redis restart
        await state.apply([MarkBusy(uuid.UUID(aid))], [(client, b'{"n":1}')])
        async with asyncio.timeout(5):
            message = None
            while message is None:
                message = await pubsub.get_message(timeout=1.0)
        assert message["data"] == f'{client}\n{{"n":1}}'.encode()
        assert await redis.hget(redis_keys.live_artisan(aid), "current_status") == "BUSY"
        failures = notifier.gateway.notify_failures._value.get()
        await redis.set(redis_keys.user_nodes(str(client)), "not a sorted set")
        await state.apply([MarkAvailable(uuid.UUID(aid))], [(client, b'{"n":2}')])

        # counted once its reply is read (gateway/redis_writer.py: READ_EVERY_S later)
        async def counted() -> bool:
            return bool(notifier.gateway.notify_failures._value.get() == failures + 1)

        await eventually(counted)
        # the publish failed alone: the change after it was applied
        assert await redis.hget(redis_keys.live_artisan(aid), "current_status") != "BUSY"
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await listener.aclose()
