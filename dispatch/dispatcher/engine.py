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
from datetime import UTC, datetime
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
from dispatch.offers.service import record_accepted
from dispatch.policies import (
    ArtisanHistory,
    Found,
    JobState,
    Policy,
    Verdict,
    policy_from_settings,
    step,
)

log = logging.getLogger("zendo.dispatch")


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
    # The batched policy assigns at most this many waiting jobs per tick.
    batch_max_jobs: int = 500


class Dispatcher:
    def __init__(self, app: web.Application, config: DispatcherConfig | None = None) -> None:
        self._app = app
        self._settings = app[appkeys.SETTINGS]
        self.config = config or DispatcherConfig()
        self._matcher = Matcher(app)
        self._policy: tuple[Any, Policy] | None = None
        self._timers: dict[uuid.UUID, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def policy(self) -> Policy:
        """ZENDO_DISPATCH_POLICY: what to offer, when, how far (dispatch/policies/); built
        from the settings this dispatcher holds (tests may swap them)."""
        if self._policy is None or self._policy[0] is not self._settings:
            self._policy = (self._settings, policy_from_settings(self._settings))
        return self._policy[1]

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

    def arm(self, intervention_id: uuid.UUID, delay_s: float) -> None:
        """Step this job in `delay_s` (best_accept: when its accept window closes)."""
        self._arm(intervention_id, delay_s)

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
        """A job's timer fired. The process that took its accept disarmed only its own
        timer: with several workers, the creating one's still fires for about half the
        jobs, so the step is taken only for a job still SEARCHING (one read, no lock)."""
        self._timers.pop(intervention_id, None)
        self.spawn(self._safe_step(intervention_id, if_searching=True))

    async def _safe_step(
        self,
        intervention_id: uuid.UUID,
        offering: bool | None = None,
        prefer: str | None = None,
        *,
        if_searching: bool = False,
    ) -> None:
        try:
            if if_searching and not await self._searching(intervention_id):
                return
            await self.step(intervention_id, offering=offering, prefer=prefer)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The durable deadline still stands; the poller will retry.
            log.exception("dispatch step failed for %s", intervention_id)

    async def _searching(self, intervention_id: uuid.UUID) -> bool:
        async with self._app[appkeys.PG_POOL].acquire() as conn:
            status = await interventions_repo.status_of(conn, intervention_id=intervention_id)
        return status == SEARCHING

    # ---- the step ----------------------------------------------------------------------
    async def step(
        self, intervention_id: uuid.UUID, offering: bool | None = None, prefer: str | None = None
    ) -> None:
        """Drive one job forward, then arm its next in-process timer."""
        next_in_s, _ = await commit(
            self._app,
            lambda conn, outbox: self._step(conn, intervention_id, outbox, offering, prefer),
        )
        self._arm(intervention_id, next_in_s)

    def first_candidates(self, *, lat: float, lon: float, specialty: str) -> list[Any]:
        """The index's ranking for a job about to be created, best first (empty when the
        index is not ready, or the policy's first offers come from its first step). The
        creating statement checks them in PostgreSQL and offers the job to the first free
        ones (`offers_repo.create_job_with_offers`)."""
        if self.first_wave == 0:
            return []
        try:
            return self._matcher.rank(
                lat,
                lon,
                specialty,
                k=self.first_wave + OVERFETCH,
                max_km=self.policy.radius_km(0),
            )
        except NoIndex:
            return []

    @property
    def first_wave(self) -> int:
        """How many offers the creating statement sends (0: the first step does)."""
        return self.policy.first_wave

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
        if self.first_wave == 0 or len(offer_rows) < self.first_wave:
            effects.kick.append(job["id"])

    def after_create(self, job: Mapping[str, Any], offered: int) -> None:
        """Arm a new job's timer at its first offers' expiry, once they are committed and
        pushed (a job short of offers was kicked instead, see `first_offers`)."""
        if self.first_wave and offered >= self.first_wave:
            timeout = self.policy.offer_timeout_s
            self._arm(job["id"], self.policy.next_check(0.0, timeout, 0.0))

    async def _step(
        self,
        conn: asyncpg.Connection,
        intervention_id: uuid.UUID,
        effects: Outbox,
        offering: bool | None = None,
        prefer: str | None = None,
    ) -> float | None:
        """Returns the delay to the job's next deadline; None: it needs no more driving.

        The policy decides (`dispatch.policies.step`); this answers its asks with the
        matcher and PostgreSQL. `offering`: whether offers may go out now (default: yes,
        except for a batched policy, whose offers go out on its tick); `prefer`: the
        artisan the batch assignment chose for this job, tried first."""
        # Waits for (never skips) a concurrent holder: whatever it committed, we see.
        job = await interventions_repo.get(conn, intervention_id=intervention_id, for_update=True)
        if job is None or job["status"] != SEARCHING:
            return None
        now, offers = await offers_repo.expire_and_list(conn, intervention_id=intervention_id)
        for offer in offers:
            if offer["just_expired"]:
                effects.offer_result(offer["artisan_id"], offer["id"], "expired")
        asked = {o["artisan_id"] for o in offers}
        held = [o for o in offers if o["status"] == "HELD"]
        award_at = None
        if held:  # best_accept: award the job once the window of its first accept closes
            award_at = min(o["responded_at"].timestamp() for o in held)
            award_at += self.policy.accept_window_s
            if now >= award_at:
                await self._award(conn, job["id"], held, effects)
                return None
        started = job["search_started_at"].timestamp()
        state = JobState(
            created_at=job["created_at"].timestamp(),
            search_started_at=started,
            search_round=job["search_round"],
            # A held accept keeps the job waiting for its award, as an offer does.
            pending_expiries=tuple(
                o["expires_at"].timestamp() for o in offers if o["status"] == "PENDING"
            )
            + ((award_at,) if award_at is not None else ()),
            last_offer_at=max(
                (t for t in (o["created_at"].timestamp() for o in offers) if t >= started),
                default=None,
            ),
            asked=len(offers),
        )
        policy = self.policy
        if offering is None:
            offering = policy.batch_interval_s is None
        if held:  # no new offers while an award is due
            offering = False
        plan = step(
            policy,
            now,
            state,
            search_window_s=self.config.search_window_s,
            recheck_s=self.config.recheck_s,
            offering=offering,
        )
        order = self._order(conn, now, prefer)
        try:
            ask = next(plan)
            while True:
                found = await self._matcher.offer(conn, job, asked, ask.n, ask.radius_km, order)
                for offer in found.offers:
                    effects.push(offer["artisan_id"], found.frames[offer["id"]])
                    asked.add(offer["artisan_id"])
                if found.offers and job["first_offer_at"] is None:
                    effects.first_offer_of = job["created_at"]
                ask = plan.send(Found(len(found.offers), found.waiting))
        except StopIteration as done:
            verdict: Verdict = done.value
        except NoIndex:
            # The index mirror is not ready yet: try again shortly, never give up for it.
            return await self._reschedule(conn, job, effects, None, job["search_round"])
        if verdict.next_check_at is None:
            return await self._give_up(conn, job, effects, asked=len(asked))
        deadline = datetime.fromtimestamp(verdict.next_check_at, UTC)
        return await self._reschedule(conn, job, effects, deadline, verdict.search_round)

    async def _award(
        self,
        conn: asyncpg.Connection,
        job_id: uuid.UUID,
        held: list[asyncpg.Record],
        effects: Outbox,
    ) -> None:
        """best_accept: the best-scored held accept wins; the others are TAKEN."""
        winner = self.policy.award([(str(o["artisan_id"]), o["score"]) for o in held])
        offer = next(o for o in held if str(o["artisan_id"]) == winner)
        row = await offers_repo.accept(conn, offer_id=offer["id"], artisan_id=offer["artisan_id"])
        if row is not None and row["offer_accepted"]:
            record_accepted(effects, row, artisan_id=offer["artisan_id"], offer_id=offer["id"])
            return
        # The winner stopped being VERIFIED meanwhile: let every holder go, search again.
        for other in await offers_repo.close_pending_for_intervention(
            conn, intervention_id=job_id, outcome="TAKEN"
        ):
            effects.offer_result(other["artisan_id"], other["id"], "taken")
        effects.kick.append(job_id)

    def _order(self, conn: asyncpg.Connection, now: float, prefer: str | None) -> Any:
        """The policy's ordering of ranked candidates (None: the matcher's own)."""
        policy = self.policy
        if not policy.needs_history and prefer is None:
            return None

        async def order(candidates: list[Any]) -> list[Any]:
            history: dict[str, ArtisanHistory] = {}
            if policy.needs_history:
                rows = await offers_repo.artisan_history(
                    conn,
                    artisan_ids=[uuid.UUID(c.artisan_id) for c in candidates],
                    window_s=policy.params.window_s,  # type: ignore[union-attr]
                )
                history = {
                    str(r["artisan_id"]): ArtisanHistory(
                        r["last_job_ended_at"], r["offers"], r["accepted"]
                    )
                    for r in rows
                }
            ranked = policy.order(now, candidates, history)
            if prefer is not None:
                ranked.sort(key=lambda c: c.artisan_id != prefer)  # stable: the rest keep order
            return ranked

        return order

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

    # ---- the batched policy's tick -----------------------------------------------------------
    async def batch_once(self) -> int:
        """Assign every job waiting for an offer together with `ArtisanIndex.assign` (each
        free artisan to one job; most jobs served, then the least total score), then step
        each job with its artisan tried first."""
        interval = self.policy.batch_interval_s
        assert interval is not None
        k = self.policy.params.k  # type: ignore[union-attr]
        async with self._app[appkeys.PG_POOL].acquire() as conn:
            rows = await offers_repo.jobs_waiting_for_offer(conn, limit=self.config.batch_max_jobs)
            engaged = {str(a) for a in await offers_repo.engaged_artisans(conn)} if rows else set()
        # One assignment per search radius (jobs widen at their own pace), each artisan
        # chosen by an earlier one left out of the next.
        chosen: dict[str, Any] = {}
        by_round: dict[int, list[Any]] = {}
        for r in rows:
            by_round.setdefault(r["search_round"], []).append(r)
        try:
            index = self._matcher.index()
            for search_round, group in sorted(by_round.items()):
                taken = engaged | {c.artisan_id for c in chosen.values() if c is not None}
                chosen |= index.assign(
                    [(str(r["id"]), r["lat"], r["lon"], r["specialty"]) for r in group],
                    k=k,
                    max_km=self.policy.radius_km(search_round),
                    exclude=taken,
                    exclude_per_job={str(r["id"]): [str(a) for a in r["asked"]] for r in group},
                )
        except NoIndex:
            return 0
        for r in rows:
            pick = chosen[str(r["id"])]
            prefer = pick.artisan_id if pick is not None else None
            await self._safe_step(r["id"], offering=True, prefer=prefer)
        return len(rows)

    async def run_batches(self) -> None:
        interval = self.policy.batch_interval_s
        assert interval is not None
        while True:
            try:
                await self.batch_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatch batch failed")
            await asyncio.sleep(interval)

    async def close(self) -> None:
        self._closing = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
