"""The dispatch loop: offers, cascade, widening, UNFULFILLED.

One *step* drives one SEARCHING job forward inside one transaction holding its
row lock: expire its due offers, top its pending offers up to
`settings.offer_batch` from the ranked candidates nobody asked yet, widen the
search once when the radius is exhausted, and give up (UNFULFILLED) when even
the widened search has nobody left. The step ends by storing the job's next
deadline in `interventions.next_check_at`.

Who runs steps, and when:
- the process that created, declined or released a job, right after its commit
  (a new job's first offers are written by its creating statement itself, see
  `offers_repo.create_job_with_offers`; a step follows only if they fell short);
- an in-process timer at the job's next deadline (offer expiry, re-check);
- a poller in every process that claims due jobs with FOR UPDATE SKIP LOCKED and
  leases them (next_check_at = now + lease) before stepping them, so the
  deadlines survive restarts and a crashed process's jobs are taken over.

A step is idempotent and serialised by the row lock, so duplicate wake-ups from
timers, pollers and events in several processes are harmless; the unique
indexes on offers are the backstop against duplicate offers.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web

from core import appkeys
from core.outbox import Outbox, commit
from dispatch.dispatcher.matcher import OVERFETCH, Matcher, NoIndex
from dispatch.interventions import repo as interventions_repo
from dispatch.interventions.schemas import offer_frame, push_status
from dispatch.interventions.statemachine import SEARCHING, UNFULFILLED
from dispatch.offers import repo as offers_repo

log = logging.getLogger("zendo.dispatch")

WIDEN_FACTOR = 2.0  # the one widened search reaches twice ZENDO_MATCH_RADIUS_KM


@dataclass(frozen=True, slots=True)
class DispatcherConfig:
    poll_interval_s: float = 0.5
    # A claimed job stays with its claimer this long before another poller may take it.
    lease_s: float = 5.0
    # Re-check delay for a job whose only candidates are answering another offer.
    recheck_s: float = 1.0
    # After this long without a single free candidate, waiting jobs become UNFULFILLED.
    search_window_s: float = 120.0
    claim_batch: int = 50


class Dispatcher:
    def __init__(self, app: web.Application, config: DispatcherConfig | None = None) -> None:
        self._app = app
        self._settings = app[appkeys.SETTINGS]
        self.config = config or DispatcherConfig()
        self._matcher = Matcher(app)
        self._timers: dict[uuid.UUID, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    # ---- wake-ups -------------------------------------------------------------------
    def kick(self, intervention_id: uuid.UUID) -> None:
        """Step this job now, in the background (after the caller's commit)."""
        self.spawn(self._safe_step(intervention_id))

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a post-commit task in the background; cancelled and awaited at shutdown."""
        if self._closing:
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def disarm(self, intervention_id: uuid.UUID) -> None:
        """The job left SEARCHING: drop its in-process timer (the durable row is cleared)."""
        self._arm(intervention_id, None)

    def _arm(self, intervention_id: uuid.UUID, delay_s: float | None) -> None:
        old = self._timers.pop(intervention_id, None)
        if old is not None:
            old.cancel()
        if delay_s is None or self._closing:
            return
        # A few ms of slack so the deadline has passed on the database's clock too.
        self._timers[intervention_id] = asyncio.get_running_loop().call_later(
            max(0.0, delay_s) + 0.005, self._fire, intervention_id
        )

    def _fire(self, intervention_id: uuid.UUID) -> None:
        self._timers.pop(intervention_id, None)
        self.kick(intervention_id)

    async def _safe_step(self, intervention_id: uuid.UUID) -> None:
        try:
            await self.step(intervention_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The durable deadline still stands; the poller will retry.
            log.exception("dispatch step failed for %s", intervention_id)

    # ---- the step ----------------------------------------------------------------------
    async def step(self, intervention_id: uuid.UUID) -> None:
        """Drive one job forward, then arm its next in-process timer."""
        next_in_s, _ = await commit(
            self._app, lambda conn, outbox: self._step(conn, intervention_id, outbox)
        )
        self._arm(intervention_id, next_in_s)

    def first_candidates(self, *, lat: float, lon: float, specialty: str) -> list[Any]:
        """The index's ranking for a job about to be created, best first (empty when the
        index is not ready). The creating statement checks them in PostgreSQL and offers
        the job to the first free ones (`offers_repo.create_job_with_offers`)."""
        try:
            return self._matcher.rank(
                lat,
                lon,
                specialty,
                k=self._settings.offer_batch + OVERFETCH,
                max_km=self._radius(0),
            )
        except NoIndex:
            return []

    def first_offers(
        self, job: Mapping[str, Any], offer_rows: list[asyncpg.Record], effects: Outbox
    ) -> None:
        """Records the frames of a new job's first offers (one row per offer), committed
        with it by `offers_repo.create_job_with_offers`. Fewer offers than `offer_batch`
        (nobody free in the first ranking, lost races, no index yet): a full step right
        after the commit, which tops up, widens or gives up, so a job is never left
        waiting for the poller."""
        for r in offer_rows:
            offer = {
                "id": r["offer_id"],
                "artisan_id": r["offer_artisan_id"],
                "distance_km": r["offer_distance_km"],
                "expires_at": r["offer_expires_at"],
            }
            effects.push(offer["artisan_id"], offer_frame(offer, job))
        if offer_rows:
            effects.first_offer_of = job["created_at"]
        if len(offer_rows) < self._settings.offer_batch:
            effects.kick.append(job["id"])

    def after_create(self, job: Mapping[str, Any], offered: int) -> None:
        """Arm a new job's timer at its first offers' expiry, once they are committed and
        pushed (a job short of offers was kicked instead, see `first_offers`)."""
        if offered >= self._settings.offer_batch:
            self._arm(job["id"], self._settings.offer_timeout_s)

    async def _step(
        self, conn: asyncpg.Connection, intervention_id: uuid.UUID, effects: Outbox
    ) -> float | None:
        """Returns the delay to the job's next deadline; None: it needs no more driving."""
        # Waits for (never skips) a concurrent holder: whatever it committed, we see.
        job = await interventions_repo.get(conn, intervention_id=intervention_id, for_update=True)
        if job is None or job["status"] != SEARCHING:
            return None
        offers = await offers_repo.expire_and_list(conn, intervention_id=intervention_id)
        for offer in offers:
            if offer["just_expired"]:
                effects.offer_result(offer["artisan_id"], offer["id"], "expired")
        asked = {o["artisan_id"] for o in offers}
        deadlines = [o["expires_at"] for o in offers if o["status"] == "PENDING"]
        wanted = self._settings.offer_batch - len(deadlines)
        search_round = job["search_round"]
        waiting = False
        try:
            if wanted > 0:
                found = await self._matcher.offer(
                    conn, job, asked, wanted, self._radius(search_round)
                )
                waiting = found.waiting
                if search_round == 0 and not found.offers and not deadlines:
                    # Nobody free within the radius and nothing pending: widen, once.
                    search_round = 1
                    found = await self._matcher.offer(conn, job, asked, wanted, self._radius(1))
                    waiting = waiting or found.waiting
                for offer in found.offers:
                    effects.push(offer["artisan_id"], found.frames[offer["id"]])
                    deadlines.append(offer["expires_at"])
                if found.offers and job["first_offer_at"] is None:
                    effects.first_offer_of = job["created_at"]
        except NoIndex:
            # The index mirror is not ready yet: try again shortly, never give up for it.
            return await self._reschedule(conn, job, effects, None, search_round)
        if deadlines:
            return await self._reschedule(conn, job, effects, min(deadlines), search_round)
        elapsed = await conn.fetchval(
            "SELECT EXTRACT(EPOCH FROM clock_timestamp() - $1::timestamptz)::float8",
            job["search_started_at"],
        )
        if waiting and elapsed < self.config.search_window_s:
            return await self._reschedule(conn, job, effects, None, search_round)
        return await self._give_up(conn, job, effects, asked=len(offers))

    def _radius(self, search_round: int) -> float:
        factor = WIDEN_FACTOR if search_round else 1.0
        return self._settings.match_radius_km * factor

    async def _reschedule(
        self,
        conn: asyncpg.Connection,
        job: asyncpg.Record,
        effects: Outbox,
        deadline: object,
        search_round: int,
    ) -> float | None:
        """Store the job's next deadline (an offer expiry, or now + recheck_s)."""
        delay = await conn.fetchval(
            """UPDATE interventions SET
                 next_check_at = COALESCE($2::timestamptz,
                                          clock_timestamp() + make_interval(secs => $3)),
                 search_round = $4,
                 lease_owner = NULL,
                 first_offer_at = COALESCE(first_offer_at,
                                           CASE WHEN $5 THEN clock_timestamp() END)
               WHERE id = $1
               RETURNING EXTRACT(EPOCH FROM next_check_at - clock_timestamp())::float8""",
            job["id"],
            deadline,
            self.config.recheck_s,
            search_round,
            effects.first_offer_of is not None,
        )
        return float(delay)

    async def _give_up(
        self, conn: asyncpg.Connection, job: asyncpg.Record, effects: Outbox, *, asked: int
    ) -> float | None:
        row = await interventions_repo.transition_logged(
            conn,
            intervention_id=job["id"],
            expected=SEARCHING,
            target=UNFULFILLED,
            actor_id=None,
            actor_role="SYSTEM",
            data={"asked": asked},
        )
        if row is None:  # unreachable while we hold the row lock; be safe anyway
            return None
        push_status(effects, row)
        return None

    # ---- the poller -------------------------------------------------------------------------
    async def claim_due(self) -> list[uuid.UUID]:
        """Lease every due SEARCHING job nobody else is stepping right now."""
        pool = self._app[appkeys.PG_POOL]
        rows = await pool.fetch(
            """UPDATE interventions SET
                 next_check_at = clock_timestamp() + make_interval(secs => $1),
                 lease_owner = $2
               WHERE id IN (SELECT id FROM interventions
                            WHERE status = 'SEARCHING' AND next_check_at <= clock_timestamp()
                            ORDER BY next_check_at
                            LIMIT $3
                            FOR UPDATE SKIP LOCKED)
               RETURNING id""",
            self.config.lease_s,
            self._settings.node_id,
            self.config.claim_batch,
        )
        return [r["id"] for r in rows]

    async def poll_once(self) -> int:
        claimed = await self.claim_due()
        if claimed:
            await asyncio.gather(*(self._safe_step(i) for i in claimed))
        return len(claimed)

    async def run(self) -> None:
        while True:
            try:
                claimed = await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatch poll failed")
                claimed = 0
            if claimed < self.config.claim_batch:
                await asyncio.sleep(self.config.poll_interval_s)

    async def close(self) -> None:
        self._closing = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
