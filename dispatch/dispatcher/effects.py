"""Side effects of a committed transaction: pushes, live state, payments, metrics.

Services collect them while the transaction runs and apply them only after it
commits, so nobody is told about a change that was rolled back. Applying never
raises: PostgreSQL already holds the truth, and each failure is logged.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
from aiohttp import web

from dispatch import appkeys
from dispatch.db import run_statement
from dispatch.interventions.schemas import intervention_json
from dispatch.middleware import METRICS

log = logging.getLogger("zendo.dispatch")

# What a one-statement hot path returns: (result, effects), or None when it wrote nothing.
Outcome = TypeVar("Outcome", bound=tuple[Any, "Effects"] | None)


@dataclass(frozen=True, slots=True)
class TrackingStart:
    artisan_id: uuid.UUID
    intervention_id: uuid.UUID
    client_id: uuid.UUID
    job_lat: float
    job_lon: float


@dataclass(slots=True)
class Effects:
    frames: list[tuple[uuid.UUID, dict[str, Any]]] = field(default_factory=list)
    busy: list[uuid.UUID] = field(default_factory=list)
    available: list[uuid.UUID] = field(default_factory=list)
    track: list[TrackingStart] = field(default_factory=list)
    untrack: list[uuid.UUID] = field(default_factory=list)
    payments: list[tuple[str, uuid.UUID]] = field(default_factory=list)
    ratings: list[tuple[uuid.UUID, float]] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    kick: list[uuid.UUID] = field(default_factory=list)
    # Jobs that left SEARCHING: their pending offer-expiry timer here would only wake a
    # step with nothing to do.
    settled: list[uuid.UUID] = field(default_factory=list)
    # Set when this transaction sent a job's first offers: the job's creation time.
    first_offer_of: datetime | None = None
    # perf_counter() and time.time() once every frame was handed to a socket of this
    # process or, for a user with no socket here, to the other nodes' channel.
    pushed_at: float = 0.0
    pushed_wall: float = 0.0
    # What other processes' sockets still need, once `deliver` ran here.
    remote: list[tuple[uuid.UUID, bytes]] | None = None

    def push(self, user_id: uuid.UUID, frame: dict[str, Any]) -> None:
        self.frames.append((user_id, frame))

    def offer_result(self, artisan_id: uuid.UUID, offer_id: uuid.UUID, outcome: str) -> None:
        self.outcomes[outcome] += 1
        self.push(
            artisan_id,
            {"type": "offer.result", "offer_id": str(offer_id), "outcome": outcome},
        )

    def status(self, row: asyncpg.Record, *, also_artisan: uuid.UUID | None = None) -> None:
        """intervention.status to the client, and to the artisan concerned (if any)."""
        self.push(
            row["client_id"],
            {
                "type": "intervention.status",
                "intervention": intervention_json(row, for_client=True),
            },
        )
        artisan = also_artisan or row["artisan_id"]
        if artisan is not None:
            self.push(
                artisan,
                {
                    "type": "intervention.status",
                    "intervention": intervention_json(row, for_client=False),
                },
            )

    def merge(self, other: Effects) -> None:
        assert self.remote is None and other.remote is None, "merge before delivering"
        self.frames += other.frames
        self.busy += other.busy
        self.available += other.available
        self.track += other.track
        self.untrack += other.untrack
        self.payments += other.payments
        self.ratings += other.ratings
        self.outcomes.update(other.outcomes)
        self.kick += other.kick
        self.settled += other.settled
        self.first_offer_of = self.first_offer_of or other.first_offer_of

    def deliver(self, app: web.Application) -> None:
        """Frames onto this process's sockets now, with no await (a task per frame would
        cost each push a loop turn or two under load); idempotent. A caller still holding
        the connection that committed calls it before the release, then `apply`."""
        if self.remote is None:
            self.remote, all_here = self._deliver(app)
            if all_here:
                self._pushed()

    async def apply(self, app: web.Application) -> None:
        # Concurrently: the pushes should not wait for the live-state round trips, and
        # PostgreSQL (not the index) already keeps a BUSY artisan from being matched.
        # Pushes first: local sockets get their frames before the first await.
        self.deliver(app)
        assert self.remote is not None
        await asyncio.gather(self._publish_remote(app, self.remote), self._live_state(app))
        if self.first_offer_of is not None:
            sent = self.pushed_wall or time.time()
            app[METRICS].first_offer_seconds.observe(
                max(0.0, sent - self.first_offer_of.timestamp())
            )
        for outcome, n in self.outcomes.items():
            app[METRICS].offers.labels(outcome=outcome).inc(n)
        await self._payments(app)
        dispatcher = app.get(appkeys.DISPATCHER)
        if dispatcher is not None:
            for intervention_id in self.settled:
                dispatcher.disarm(intervention_id)
            for intervention_id in self.kick:
                dispatcher.kick(intervention_id)

    def _deliver(self, app: web.Application) -> tuple[list[tuple[uuid.UUID, bytes]], bool]:
        """Returns the encoded frames (for the other processes' sockets) and whether each
        one's user had a socket here that took it."""
        notifier = app.get(appkeys.NOTIFIER)
        if notifier is None or not self.frames:
            return [], False
        delivered = [(uid, *notifier.deliver_here(uid, frame)) for uid, frame in self.frames]
        encoded = [(uid, data) for uid, data, _here in delivered if data is not None]
        return encoded, all(here > 0 for _uid, _data, here in delivered)

    def _pushed(self) -> None:
        self.pushed_at = time.perf_counter()
        self.pushed_wall = time.time()

    async def _publish_remote(
        self, app: web.Application, encoded: list[tuple[uuid.UUID, bytes]]
    ) -> None:
        notifier = app.get(appkeys.NOTIFIER)
        if notifier is None or not self.frames:
            return
        await notifier.publish_many(encoded)  # never raises: it logs and counts failures
        if not self.pushed_at:  # a user had no socket here: sent once the others have it
            self._pushed()

    async def _live_state(self, app: web.Application) -> None:
        if not (self.busy or self.available or self.track or self.untrack or self.ratings):
            return
        try:
            from gateway import live, tracking
        except ImportError:  # the gateway is not installed in this process
            log.warning("gateway.live/tracking unavailable; live state not updated")
            return
        redis = app[appkeys.REDIS]
        calls: list[Any] = []
        calls += [live.set_busy(redis, a) for a in self.busy]
        calls += [live.set_available(redis, a) for a in self.available]
        calls += [tracking.stop_tracking(redis, artisan_id=a) for a in self.untrack]
        calls += [
            tracking.start_tracking(
                redis,
                artisan_id=t.artisan_id,
                intervention_id=t.intervention_id,
                client_id=t.client_id,
                job_lat=t.job_lat,
                job_lon=t.job_lon,
            )
            for t in self.track
        ]
        calls += [live.update_profile(redis, a, rating=r) for a, r in self.ratings]
        for result in await asyncio.gather(*calls, return_exceptions=True):
            if isinstance(result, BaseException):
                log.warning("live state update failed: %r", result)

    async def _payments(self, app: web.Application) -> None:
        """Stripe calls can take hundreds of ms: they run in the background (tracked by the
        dispatcher, cancelled at shutdown) so the answer and the pushes never wait for them."""
        payments = app.get(appkeys.PAYMENTS)
        if payments is None or not self.payments:
            return
        dispatcher = app.get(appkeys.DISPATCHER)
        for method, intervention_id in self.payments:
            call = _payment_call(payments, method, intervention_id)
            if dispatcher is not None:
                dispatcher.spawn(call)
            else:
                await call


async def _payment_call(payments: Any, method: str, intervention_id: uuid.UUID) -> None:
    try:
        await _maybe_await(getattr(payments, method)(intervention_id))
    except Exception:
        log.exception("payments.%s(%s) failed", method, intervention_id)


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def run_statement_and_deliver(
    app: web.Application,
    work: Callable[[asyncpg.Connection], Awaitable[Outcome]],
) -> Outcome:
    """`run_statement` for a one-statement hot path whose `work` returns its result with
    the committed change's effects (or None when it wrote nothing): their frames go to
    this process's sockets before the connection goes back to the pool. The caller
    then awaits `effects.apply(app)` for the rest (Redis, other nodes, metrics)."""

    def deliver(outcome: Outcome) -> None:
        if outcome is not None:
            outcome[1].deliver(app)

    return await run_statement(app[appkeys.PG_POOL], work, then=deliver)
