"""Registry cleanups of closed sockets, batched.

When a user's last socket here closes, this node leaves their user -> nodes entry and,
for an artisan, their offline grace starts. That used to be one Redis script call per
closed socket. When thousands of sockets drop at once (a network blip, a load balancer
restart, the end of a load test) those calls queued on the Redis pool ahead of the
requests: one status change waited 8.6 s for a connection and answered 500.

So a closed socket only queues its user here; one flush writes up to `chunk` of them in
one DISCONNECT_MANY call, `linger_s` after the first one arrived. A user who has a
socket here again by then is skipped (the older one-call cleanup could remove a fresh
reconnection's entry). The grace starts at the flush, a few milliseconds late.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from redis.asyncio import Redis

from core import redis_keys
from gateway import live
from gateway.tasks import finish_task

log = logging.getLogger("zendo.gateway")


class Departures:
    def __init__(
        self,
        redis: Callable[[], Redis],
        *,
        node_id: str,
        grace_ms: int,
        is_here: Callable[[str], bool],
        linger_s: float = 0.005,
        chunk: int = 2000,
    ) -> None:
        self._redis = redis
        self._node_id = node_id
        self._grace_ms = grace_ms
        self._is_here = is_here
        self._linger_s = linger_s
        self._chunk = chunk
        self._pending: dict[str, bool] = {}  # user id -> is an artisan
        self._flusher: asyncio.Task[None] | None = None

    def add(self, user_id: str, *, is_artisan: bool) -> None:
        self._pending[user_id] = is_artisan
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(
                self._run(), name="gateway-departures"
            )

    def drain(self) -> list[tuple[str, bool]]:
        """What is queued, taken out (shutdown cleans these up with everyone else)."""
        pending, self._pending = self._pending, {}
        return [(u, a) for u, a in pending.items() if not self._is_here(u)]

    async def stop(self, timeout_s: float = 2.0) -> None:
        """Lets the flush under way finish (a cancelled one would lose its batch)."""
        await finish_task(self._flusher, timeout_s)

    async def _run(self) -> None:
        while self._pending:
            await asyncio.sleep(self._linger_s)
            batch: list[tuple[str, bool]] = []
            while self._pending and len(batch) < self._chunk:
                user_id, is_artisan = self._pending.popitem()
                if not self._is_here(user_id):
                    batch.append((user_id, is_artisan))
            if batch:
                await self.write(batch)

    async def write(self, users: list[tuple[str, bool]]) -> None:
        """One script call per `chunk` users; a failure is only logged: the registry
        entries expire with their TTL and the presence leases on their own."""
        for start in range(0, len(users), self._chunk):
            part = users[start : start + self._chunk]
            rows = "".join(f"{u}|{'1' if a else '0'}\n" for u, a in part)
            try:
                await live.DISCONNECT_MANY(
                    self._redis(),
                    [
                        redis_keys.USER_NODES_PREFIX,
                        redis_keys.PRESENCE_LEASES,
                        self._node_id,
                        live.now_ms(),
                        self._grace_ms,
                        rows,
                    ],
                )
            except Exception as exc:
                log.warning("registry cleanup of %d user(s) failed: %s", len(part), exc)
