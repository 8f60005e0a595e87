"""The gateway's side of the outbox: live-state changes of committed work
(`core.ports.LiveState`, at `app[core.appkeys.LIVE_STATE]`)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from aiohttp import web
from redis.asyncio import Redis

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
from gateway.notify import Notifier
from gateway.redis_writer import ErrorHandler

log = logging.getLogger("zendo.gateway")


class RedisLiveState:
    def __init__(self, app: web.Application, notifier: Notifier) -> None:
        self._app = app  # the Redis client exists once the app has started
        self._notifier = notifier

    async def apply(
        self,
        changes: Sequence[LiveChange],
        publish: Sequence[tuple[uuid.UUID | str, bytes]] = (),
    ) -> None:
        """Every change of one commit, and the frames other processes' sockets need
        (`Notifier.publish_many`'s, queued first), written at once on the gateway's
        `RedisWriter`, whose replies are read later; while it is not ready, one awaited
        round trip through the pool. A failure is logged (a publish's also counted);
        the next presence or profile refresh corrects the live state (PostgreSQL holds
        the truth)."""
        if not changes and not publish:
            return
        redis = self._app[appkeys.REDIS]

        def fill(calls: live.ScriptCalls) -> list[live.Script]:
            scripts = [self._notifier.queue_publish(calls, publish)] if publish else []
            return scripts + [s for change in changes if (s := _queue(calls, redis, change))]

        writer = self._notifier.gateway.writer
        if writer.ready:  # written now, the replies read later (gateway/redis_writer.py)
            calls = live.ScriptCalls()
            scripts = fill(calls)
            handlers: list[ErrorHandler] = [_live_failed] * len(scripts)
            if publish:
                frames = len(publish)
                handlers[0] = lambda exc: self._notifier.publish_failed(frames, exc)
            if writer.send(calls.commands, [script.source for script in scripts], handlers):
                return
        try:
            replies = await live.run_pipeline(redis, fill)
        except Exception as exc:
            log.warning("live state update of %d change(s) failed: %r", len(changes), exc)
            if publish:
                self._notifier.publish_failed(len(publish), exc)
            return
        if publish:
            published, replies = replies[0], replies[1:]
            if isinstance(published, Exception):
                self._notifier.publish_failed(len(publish), published)
        for reply in replies:
            if isinstance(reply, Exception):
                log.warning("live state update failed: %r", reply)


def _live_failed(exc: Exception) -> None:
    log.warning("live state update failed: %r", exc)


def _queue(calls: live.ScriptCalls, redis: Redis, change: LiveChange) -> live.Script | None:
    """Add the change's commands; returns the script it calls, if any."""
    match change:
        case MarkBusy(artisan_id, version):
            live.SET_BUSY.queue(calls, redis, live.set_busy_args(artisan_id, version))
            return live.SET_BUSY
        case MarkAvailable(artisan_id, version):
            live.SET_AVAILABLE.queue(calls, redis, live.set_available_args(artisan_id, version))
            return live.SET_AVAILABLE
        case TrackingStart(artisan_id, intervention_id, client_id, job_lat, job_lon, version):
            args = tracking.start_args(
                artisan_id=artisan_id,
                intervention_id=intervention_id,
                client_id=client_id,
                job_lat=job_lat,
                job_lon=job_lon,
                version=version,
            )
            live.TRACK_START.queue(calls, redis, args)
            return live.TRACK_START
        case TrackingStop(artisan_id, version):
            args = tracking.stop_args(artisan_id=artisan_id, version=version)
            live.TRACK_STOP.queue(calls, redis, args)
            return live.TRACK_STOP
        case ProfileChanged(artisan_id, specialty, rating, verified):
            profile = live.update_profile_args(
                artisan_id, specialty=specialty, rating=rating, verified=verified
            )
            if profile is None:
                return None
            live.UPDATE_PROFILE.queue(calls, redis, profile)
            return live.UPDATE_PROFILE
