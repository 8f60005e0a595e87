"""The gateway's side of the outbox: live-state changes of committed work
(`core.ports.LiveState`, at `app[core.appkeys.LIVE_STATE]`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence

from aiohttp import web

from core import appkeys
from core.effects import (
    LiveChange,
    MarkAvailable,
    MarkBusy,
    ProfileChanged,
    TrackingStart,
    TrackingStop,
)
from gateway import live, tracking

log = logging.getLogger("zendo.gateway")


class RedisLiveState:
    def __init__(self, app: web.Application) -> None:
        self._app = app  # the Redis client exists once the app has started

    async def apply(self, changes: Sequence[LiveChange]) -> None:
        """Concurrently, one Redis call per change; a failure is logged and the next
        presence or profile refresh corrects it (PostgreSQL holds the truth)."""
        calls = [self._call(change) for change in changes]
        for result in await asyncio.gather(*calls, return_exceptions=True):
            if isinstance(result, Exception):
                log.warning("live state update failed: %r", result)

    def _call(self, change: LiveChange) -> Awaitable[object]:
        redis = self._app[appkeys.REDIS]
        match change:
            case MarkBusy(artisan_id):
                return live.set_busy(redis, artisan_id)
            case MarkAvailable(artisan_id):
                return live.set_available(redis, artisan_id)
            case TrackingStart(artisan_id, intervention_id, client_id, job_lat, job_lon):
                return tracking.start_tracking(
                    redis,
                    artisan_id=artisan_id,
                    intervention_id=intervention_id,
                    client_id=client_id,
                    job_lat=job_lat,
                    job_lon=job_lon,
                )
            case TrackingStop(artisan_id):
                return tracking.stop_tracking(redis, artisan_id=artisan_id)
            case ProfileChanged(artisan_id, specialty, rating, verified):
                return live.update_profile(
                    redis, artisan_id, specialty=specialty, rating=rating, verified=verified
                )
