"""At most ZENDO_MAX_SOCKETS_PER_USER open sockets per user, across processes
(CONTRACT §8a): each socket has its own ping budget and send queue, so copies of one
token would multiply both.

Once a socket has its hello it becomes a member `node|n` of the user's sorted set in
Redis, scored by when it opened; the oldest members past the cap are popped and each
popped socket is closed with 4409 by the process holding it: this one at once, another
through its channel (`notify`). The members of a process that died are the oldest and
go first; the key expires a day after the user's last new socket. A failure only logs
(the cap is then not enforced for those sockets).

Opens and closes are queued and written in batches, in order, one script call per
`chunk` of them, `linger_s` after the first: when thousands of sockets open or close
together (a reconnect storm, a network blip, the end of a load test), one call per
socket queued thousands of round trips on the Redis pool ahead of the requests.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Literal

from redis.asyncio import Redis

from core import redis_keys
from gateway import live
from gateway.session import CLOSE_REPLACED, Session
from gateway.tasks import finish_task

log = logging.getLogger("zendo.gateway")

# A message on a node's channel that closes one of its sockets: prefix, user, "\n", sid.
# User ids are UUIDs, so no frame's "user\nframe" payload starts with it.
CLOSE_PREFIX = "!close:"
KEY_TTL_MS = 24 * 3600 * 1000

# ARGV: key prefix, cap, key ttl ms, rows "op user member score\n" applied in order
# ("+" adds the member and pops the user's oldest past the cap, "-" removes it).
# Returns the popped as a flat list user, member, user, member...
_APPLY = """
local prefix, cap, ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local popped_all = {}
for op, user, member, score in string.gmatch(ARGV[4], "([+-]) (%S+) (%S+) (%S+)\\n") do
  local key = prefix .. user
  if op == '+' then
    redis.call('ZADD', key, score, member)
    redis.call('PEXPIRE', key, ttl)
    local over = redis.call('ZCARD', key) - cap
    if over > 0 then
      local popped = redis.call('ZPOPMIN', key, over)
      for i = 1, #popped, 2 do
        popped_all[#popped_all + 1] = user
        popped_all[#popped_all + 1] = popped[i]
      end
    end
  else
    redis.call('ZREM', key, member)
  end
end
return popped_all
"""
APPLY = live.Script(_APPLY)


class SocketCap:
    def __init__(
        self,
        redis: Callable[[], Redis],
        *,
        node_id: str,
        cap: int,
        local: Callable[[str], set[Session] | None],
        linger_s: float = 0.005,
        chunk: int = 1000,
    ) -> None:
        self._redis = redis
        self._node_id = node_id
        self._cap = cap
        self._local = local
        self._linger_s = linger_s
        self._chunk = chunk
        self._numbers = itertools.count(1)
        self._rows: list[tuple[Literal["+", "-"], str, str, int]] = []  # op, user, sid, ms
        self._flusher: asyncio.Task[None] | None = None

    def opened(self, session: Session) -> None:
        session.sid = str(next(self._numbers))
        self._queue("+", session.user_id, session.sid, live.now_ms())

    def closed(self, session: Session) -> None:
        if session.sid:
            self._queue("-", session.user_id, session.sid, 0)

    def _queue(self, op: Literal["+", "-"], user_id: str, sid: str, opened_ms: int) -> None:
        self._rows.append((op, user_id, sid, opened_ms))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(
                self._run(), name="gateway-socket-cap"
            )

    async def _run(self) -> None:
        while self._rows:
            await asyncio.sleep(self._linger_s)
            batch, self._rows = self._rows[: self._chunk], self._rows[self._chunk :]
            await self.write(batch)

    async def write(self, rows: list[tuple[Literal["+", "-"], str, str, int]]) -> None:
        """Apply queued opens and closes in one script call; close what it popped."""
        redis = self._redis()
        text = "".join(f"{op} {user} {self._node_id}|{sid} {ms}\n" for op, user, sid, ms in rows)
        try:
            popped = await APPLY(redis, [redis_keys.user_sockets(""), self._cap, KEY_TTL_MS, text])
            for i in range(0, len(popped), 2):
                user_id, member = str(popped[i]), str(popped[i + 1])
                node, _, sid = member.rpartition("|")
                if node == self._node_id:
                    self.close_here(user_id, sid)
                else:
                    await redis.publish(
                        redis_keys.node_channel(node), f"{CLOSE_PREFIX}{user_id}\n{sid}"
                    )
        except Exception as exc:
            log.warning("socket cap of %d socket(s) not applied: %r", len(rows), exc)

    def close_here(self, user_id: str, sid: str) -> None:
        for session in list(self._local(user_id) or ()):
            if session.sid == sid:
                session.close_soon(CLOSE_REPLACED, "too many sockets: a newer one replaced this")

    def on_message(self, payload: str) -> None:
        """A CLOSE_PREFIX message from another process's `_open`."""
        user_id, _, sid = payload[len(CLOSE_PREFIX) :].partition("\n")
        self.close_here(user_id, sid)

    async def stop(self, timeout_s: float = 2.0) -> None:
        """Lets the flush under way finish (a cancelled one would lose its batch)."""
        await finish_task(self._flusher, timeout_s)
