"""At most ZENDO_MAX_SOCKETS_PER_USER open sockets per user, across processes
(CONTRACT §8a): each socket has its own ping budget and send queue, so copies of one
token would multiply both.

Once a socket has its hello it becomes a member `node|n` of the user's sorted set in
Redis, scored by when it opened. One script adds it and pops the oldest members past the
cap; each popped socket is closed with 4409 by the process holding it: this one at once,
another through its channel (`notify`). The members of a process that died are the
oldest and go first; the key expires a day after the user's last new socket. Both
writes run after the hello, off the socket's path; a failure only logs (the cap is then
not enforced for that socket).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from redis.asyncio import Redis

from core import redis_keys
from gateway import live
from gateway.session import CLOSE_REPLACED, Session
from gateway.tasks import stop_tasks

log = logging.getLogger("zendo.gateway")

# A message on a node's channel that closes one of its sockets: prefix, user, "\n", sid.
# User ids are UUIDs, so no frame's "user\nframe" payload starts with it.
CLOSE_PREFIX = "!close:"
KEY_TTL_MS = 24 * 3600 * 1000

# KEYS[1] the user's sockets; ARGV: member, now ms, cap, key ttl ms. Returns the popped.
_OPEN = """
local key = KEYS[1]
redis.call('ZADD', key, ARGV[2], ARGV[1])
redis.call('PEXPIRE', key, ARGV[4])
local over = redis.call('ZCARD', key) - tonumber(ARGV[3])
if over <= 0 then return {} end
local popped = redis.call('ZPOPMIN', key, over)
local members = {}
for i = 1, #popped, 2 do members[#members + 1] = popped[i] end
return members
"""
OPEN = live.Script(_OPEN)


class SocketCap:
    def __init__(
        self,
        redis: Callable[[], Redis],
        *,
        node_id: str,
        cap: int,
        local: Callable[[str], set[Session] | None],
    ) -> None:
        self._redis = redis
        self._node_id = node_id
        self._cap = cap
        self._local = local
        self._numbers = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def opened(self, session: Session) -> None:
        session.sid = str(next(self._numbers))
        self._spawn(self._open(session))

    def closed(self, session: Session) -> None:
        if session.sid:
            self._spawn(self._forget(session.user_id, session.sid))

    async def _open(self, session: Session) -> None:
        redis = self._redis()
        try:
            popped = await OPEN(
                redis,
                [f"{self._node_id}|{session.sid}", live.now_ms(), self._cap, KEY_TTL_MS],
                keys=[redis_keys.user_sockets(session.user_id)],
            )
            for member in popped:
                node, _, sid = str(member).rpartition("|")
                if node == self._node_id:
                    self.close_here(session.user_id, sid)
                else:
                    await redis.publish(
                        redis_keys.node_channel(node), f"{CLOSE_PREFIX}{session.user_id}\n{sid}"
                    )
        except Exception as exc:
            log.warning("socket cap for %s not applied: %r", session.user_id, exc)

    async def _forget(self, user_id: str, sid: str) -> None:
        try:
            await self._redis().zrem(redis_keys.user_sockets(user_id), f"{self._node_id}|{sid}")
        except Exception as exc:
            log.warning("socket of %s not removed from the cap: %r", user_id, exc)

    def close_here(self, user_id: str, sid: str) -> None:
        for session in list(self._local(user_id) or ()):
            if session.sid == sid:
                session.close_soon(CLOSE_REPLACED, "too many sockets: a newer one replaced this")

    def on_message(self, payload: str) -> None:
        """A CLOSE_PREFIX message from another process's `_open`."""
        user_id, _, sid = payload[len(CLOSE_PREFIX) :].partition("\n")
        self.close_here(user_id, sid)

    async def stop(self) -> None:
        await stop_tasks(*self._tasks)
