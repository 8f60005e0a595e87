"""The one outbox: every context's commit, and what must happen after it.

Domain code records post-commit work in an `Outbox` while its statement or
transaction runs: frames for users' sockets, live-state changes, payment steps,
jobs to step or disarm, offer outcomes for the metrics. `commit` runs the work,
retrying a deadlock or serialization failure with a fresh outbox, and then:

1. once the change is committed and while its connection is still held, hands
   the frames to this process's sockets, with no await (`Outbox.deliver`);
2. while the connection goes back to the pool, publishes the frames other processes'
   sockets need and applies the live-state changes (sent to Redis together, their
   replies read later: gateway/redis_writer.py),
   counts the metrics, starts the payment steps in the background and wakes the
   dispatcher (`Outbox.apply`).

Nobody hears of a change that was rolled back. Applying never raises: PostgreSQL
already holds the truth, and each failure is logged.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
from aiohttp import web

from core import appkeys
from core.db import RETRYABLE
from core.effects import LiveChange, PaymentStep
from core.ports import DispatchHooks

log = logging.getLogger("zendo.outbox")

T = TypeVar("T")
ATTEMPTS = 5


@dataclass(slots=True)
class Outbox:
    frames: list[tuple[uuid.UUID, dict[str, Any]]] = field(default_factory=list)
    live: list[LiveChange] = field(default_factory=list)
    payments: list[PaymentStep] = field(default_factory=list)
    # Jobs to step right after the commit (a decline, a give-back, a short first round).
    kick: list[uuid.UUID] = field(default_factory=list)
    # Jobs that left SEARCHING: their pending in-process timer would wake a step with
    # nothing to do.
    settled: list[uuid.UUID] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    # Set when this change sent a job's first offers: the job's creation time.
    first_offer_of: datetime | None = None
    # perf_counter() and time.time() once every frame was handed to a socket of this
    # process or, for a user with no socket here, sent to Redis for the other nodes.
    pushed_at: float = 0.0
    pushed_wall: float = 0.0
    # What other processes' sockets still need, once `deliver` ran here.
    _remote: list[tuple[uuid.UUID, bytes]] | None = field(default=None, repr=False)

    def push(self, user_id: uuid.UUID, frame: dict[str, Any]) -> None:
        self.frames.append((user_id, frame))

    def offer_result(self, artisan_id: uuid.UUID, offer_id: uuid.UUID, outcome: str) -> None:
        self.outcomes[outcome] += 1
        self.push(
            artisan_id,
            {"type": "offer.result", "offer_id": str(offer_id), "outcome": outcome},
        )

    def deliver(self, app: web.Application) -> None:
        """Frames onto this process's sockets now, with no await (a task per frame would
        cost each push a loop turn or two under load); idempotent."""
        if self._remote is not None:
            return
        notifier = app.get(appkeys.NOTIFIER)
        if notifier is None or not self.frames:
            self._remote = []
            return
        delivered = [(uid, *notifier.deliver_here(uid, frame)) for uid, frame in self.frames]
        self._remote = [(uid, data) for uid, data, _here in delivered if data is not None]
        if all(here > 0 for _uid, _data, here in delivered):
            self._pushed()

    async def apply(self, app: web.Application) -> None:
        """Everything after the local delivery. The remote pushes and the live state are
        sent to Redis together (the pushes first), without waiting for the replies
        while the gateway's writer is up; PostgreSQL (not the index) already keeps a
        BUSY artisan from being matched meanwhile."""
        self.deliver(app)
        assert self._remote is not None
        live = app.get(appkeys.LIVE_STATE) if self.live else None
        if live is not None:  # the remote pushes ride with the live state's commands
            await live.apply(self.live, self._remote)
            if self._remote and not self.pushed_at:
                self._pushed()
        elif self._remote:
            await self._publish_remote(app, self._remote)
        metrics = app.get(appkeys.METRICS)
        if metrics is not None:
            policy = app[appkeys.SETTINGS].dispatch_policy
            if self.first_offer_of is not None:
                sent = self.pushed_wall or time.time()
                waited = max(0.0, sent - self.first_offer_of.timestamp())
                metrics.observe_first_offer(policy, waited)
            for outcome, n in self.outcomes.items():
                metrics.count_offers(policy, outcome, n)
        hooks = app.get(appkeys.DISPATCH_HOOKS)
        await self._payments(app, hooks)
        if hooks is not None:
            for intervention_id in self.settled:
                hooks.disarm(intervention_id)
            for intervention_id in self.kick:
                hooks.kick(intervention_id)

    def _pushed(self) -> None:
        self.pushed_at = time.perf_counter()
        self.pushed_wall = time.time()

    async def _publish_remote(
        self, app: web.Application, encoded: list[tuple[uuid.UUID, bytes]]
    ) -> None:
        notifier = app.get(appkeys.NOTIFIER)
        if notifier is None or not self.frames:
            return
        await notifier.publish_many(list(encoded))  # never raises: it logs and counts
        if not self.pushed_at:  # a user had no socket here: sent once the others have it
            self._pushed()

    async def _payments(self, app: web.Application, hooks: DispatchHooks | None) -> None:
        """Stripe calls can take hundreds of ms: they run in the background (tracked by
        the dispatcher, cancelled at shutdown) so the answer and the pushes never wait."""
        payments = app.get(appkeys.PAYMENT_STEPS)
        if payments is None or not self.payments:
            return
        for step in self.payments:
            if hooks is not None:
                hooks.spawn(payments.run_step(step))
            else:
                await payments.run_step(step)


async def commit(
    app: web.Application,
    work: Callable[[asyncpg.Connection, Outbox], Awaitable[T]],
    *,
    transaction: bool = True,
) -> tuple[T, Outbox]:
    """Run `work(conn, outbox)`, then deliver and apply its outbox (module docstring).

    `transaction=False` is for a hot path written as ONE data-modifying statement,
    which PostgreSQL runs atomically in its own implicit transaction: no BEGIN and no
    COMMIT round trips. Any further statement in such a `work` commits on its own, so
    it may only read. Returns `work`'s result and the applied outbox."""
    pool = app[appkeys.PG_POOL]
    for attempt in range(1, ATTEMPTS + 1):
        outbox = Outbox()  # fresh per attempt: a retried change starts over
        conn = await pool.acquire()
        try:
            if transaction:
                async with conn.transaction():
                    result = await work(conn, outbox)
            else:
                result = await work(conn, outbox)
        except BaseException as exc:
            await pool.release(conn)
            if not isinstance(exc, RETRYABLE) or attempt == ATTEMPTS:
                raise
            await asyncio.sleep(random.uniform(0, 0.01 * 2**attempt))
            continue
        # Committed: the local sockets get their frames now, while the connection is
        # held; then it goes back to the pool in the background. asyncpg's release is a
        # shielded task, two loop turns that the answer, the Redis writes and the other
        # nodes' pushes would wait for (as long as a turn is, under load); and nothing
        # after this point holds the connection through a round trip, which under load
        # would keep every connection busy past its statement and run the pool dry.
        try:
            outbox.deliver(app)
        finally:
            _release_soon(pool, conn)
        break
    await outbox.apply(app)
    return result, outbox


# Releases under way (`_release_soon`): held so that the tasks are not collected early.
_RELEASING: set[asyncio.Future[None]] = set()


def _release_soon(pool: asyncpg.Pool, conn: asyncpg.pool.PoolConnectionProxy) -> None:
    """`pool.release(conn)` without waiting for it; a failure is logged (asyncpg has
    then closed the connection, and the pool opens another when needed). `Pool.close`
    waits for releases under way."""
    release = asyncio.ensure_future(pool.release(conn))
    _RELEASING.add(release)
    release.add_done_callback(_released)


def _released(release: asyncio.Future[None]) -> None:
    _RELEASING.discard(release)
    if not release.cancelled() and release.exception() is not None:
        log.warning("a connection's release failed: %r", release.exception())
