"""Push a frame to a user whichever gateway process holds their sockets.

Registry: `un:{user}` is a sorted set node id -> expiry (ms), refreshed by each
process for its users and trimmed on disconnect. Each process subscribes to its
own channel `node:{id}` (read by gateway/channel.py); `notify` delivers to local
sockets directly and, in one Lua call, publishes to the channel of every other live
node of that user (`publish_many`: the frames of several users in one call). A
payload that starts with `LOGOUT_MARK` instead of a JSON frame closes that user's
sockets of one session.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiohttp import web

from core import redis_keys
from core.redispool import run_script
from gateway import appkeys as gateway_keys
from gateway import live
from gateway.channel import close_channel, open_channel
from gateway.node import Gateway
from gateway.session import encode
from gateway.socket_cap import CLOSE_PREFIX
from gateway.tasks import stop_tasks

log = logging.getLogger("zendo.gateway")
# Frames are JSON objects ("{..."), so a payload starting with this is a command.
LOGOUT_MARK = "!logout "


class Notifier:
    """app[appkeys.NOTIFIER]."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def notify(self, user_id: uuid.UUID | str, frame: dict[str, Any]) -> None:
        """Deliver a server -> client frame to every socket of the user, on any process.

        Never raises for delivery problems (logged and counted in
        zendo_notify_failures_total); a user with no open socket: the frame is dropped.
        """
        data = self.deliver(user_id, frame)
        if data is not None:
            await self.publish(user_id, data)

    def deliver(self, user_id: uuid.UUID | str, frame: dict[str, Any]) -> bytes | None:
        """The local half of `notify`, with no await: onto this process's sockets of the
        user now. Returns the encoded frame for `publish` (None: not serialisable)."""
        return self.deliver_here(user_id, frame)[0]

    def deliver_here(
        self, user_id: uuid.UUID | str, frame: dict[str, Any]
    ) -> tuple[bytes | None, int]:
        """`deliver`, also saying how many of this process's sockets took the frame."""
        try:
            data = encode(frame)
        except TypeError:
            log.exception("frame for %s is not JSON serialisable", user_id)
            self.gateway.notify_failures.inc()
            return None, 0
        return data, self.gateway.deliver_local(str(user_id), data)

    async def close_session(self, user_id: uuid.UUID | str, session_id: str) -> None:
        """Close the user's sockets of a logged-out session with 4401, on every process;
        never raises (a socket missed here still fails its next renewal)."""
        self.gateway.close_session_local(str(user_id), session_id)
        await self.publish(user_id, (LOGOUT_MARK + session_id).encode())

    async def publish(self, user_id: uuid.UUID | str, data: bytes) -> None:
        """The remote half of `notify`: to every other live node holding the user."""
        await self.publish_many([(user_id, data)])

    async def publish_many(self, frames: Sequence[tuple[uuid.UUID | str, bytes]]) -> None:
        """Remote halves of several `notify`s (e.g. all the pushes of one committed
        change), in one Lua call whatever their number: written on the gateway's
        `RedisWriter` (its reply read later), or while that is not ready, one awaited
        round trip through the pool."""
        if not frames:
            return
        keys, args = self._publish_call(frames)
        redis = self.gateway.redis
        script = live.PUBLISH_TO_USERS.registered(redis)
        count = len(frames)
        if self.gateway.writer.send(
            [("EVALSHA", script.sha, len(keys), *keys, *args)],
            [live.PUBLISH_TO_USERS.source],
            [lambda exc: self.publish_failed(count, exc)],
        ):
            return
        try:
            # Packed in C on a pooled connection, without redis-py's per-command path
            # (`core.redispool.run_script`): this runs after every status change.
            await run_script(redis, script, [(keys, args)])
        except Exception as exc:
            self.publish_failed(len(frames), exc)

    def queue_publish(
        self, calls: live.ScriptCalls, frames: Sequence[tuple[uuid.UUID | str, bytes]]
    ) -> live.Script:
        """`publish_many` as one call queued with other post-commit work's (one round
        trip for all: `live.run_pipeline`); returns the script it calls. The caller
        reports a failed reply with `publish_failed`."""
        keys, args = self._publish_call(frames)
        live.PUBLISH_TO_USERS.queue(calls, self.gateway.redis, args, keys=keys)
        return live.PUBLISH_TO_USERS

    def publish_failed(self, frames: int, exc: BaseException) -> None:
        log.warning("publish of %d frame(s) failed: %s", frames, exc)
        self.gateway.notify_failures.inc(frames)

    def _publish_call(
        self, frames: Sequence[tuple[uuid.UUID | str, bytes]]
    ) -> tuple[list[str], list[Any]]:
        """PUBLISH_TO_USERS's keys and arguments for these frames."""
        keys = [redis_keys.user_nodes(str(uid)) for uid, _data in frames]
        args: list[Any] = [live.now_ms(), self.gateway.node_id, redis_keys.NODE_CHANNEL_PREFIX]
        args += (f"{uid}\n{data.decode()}" for uid, data in frames)
        return keys, args


def _on_message(gateway: Gateway, payload: str) -> None:
    if payload.startswith(CLOSE_PREFIX):
        gateway.sockets.on_message(payload)
        return
    user_id, sep, frame = payload.partition("\n")
    if not sep:
        return
    if frame.startswith(LOGOUT_MARK):
        gateway.close_session_local(user_id, frame.removeprefix(LOGOUT_MARK))
    else:
        gateway.deliver_local(user_id, frame.encode())


async def listen(gateway: Gateway) -> None:
    """Subscribe to this node's channel (gateway/channel.py); on a Redis failure
    subscribe again with backoff, and have the users re-announced."""
    channel = redis_keys.node_channel(gateway.node_id)
    backoff = 0.05
    connected_before = False
    while True:
        try:
            connection, protocol = await open_channel(
                gateway.redis, channel, lambda payload: _on_message(gateway, payload)
            )
        except Exception as exc:
            failure = exc
        else:
            try:
                if connected_before:
                    gateway.resync.set()  # Redis may have restarted: re-announce our users
                connected_before = True
                backoff = 0.05
                await protocol.watch()  # returns only by raising
            except Exception as exc:
                failure = exc
            finally:
                await close_channel(connection, protocol)
        log.warning("pub/sub listener: %s; reconnecting in %.2fs", failure, backoff)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 2.0)


async def listener_ctx(app: web.Application) -> AsyncIterator[None]:
    gateway: Gateway = app[gateway_keys.GATEWAY]
    task = asyncio.create_task(listen(gateway), name="gateway-pubsub")
    yield
    await stop_tasks(task)
