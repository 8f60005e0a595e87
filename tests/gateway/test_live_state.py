"""The outbox's live-state changes: one pipeline per commit, also after Redis lost its
script cache."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from core import appkeys, redis_keys
from core.effects import MarkAvailable, MarkBusy, ProfileChanged, TrackingStart, TrackingStop
from gateway import live


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
    fields = await redis.hmget(redis_keys.live_artisan(aid), ["current_status", "trk", "rating"])
    assert fields == ["BUSY", "1", "4.8"]
    assert await redis.hget(redis_keys.tracking(aid), "client_id") == str(client)
    await state.apply([TrackingStop(uuid.UUID(aid)), MarkAvailable(uuid.UUID(aid))])
    assert not await redis.exists(redis_keys.tracking(aid))
    assert await redis.hget(redis_keys.live_artisan(aid), "trk") is None
    # No fix yet, so not ONLINE: available means OFFLINE until the next fix.
    assert await redis.hget(redis_keys.live_artisan(aid), "current_status") == "OFFLINE"
