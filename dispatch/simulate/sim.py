"""One policy over one scenario, on a virtual clock (an event heap; seconds from 0).

The world: artisans on shifts (ONLINE in a `matching.ArtisanIndex`, BUSY while on a
job, OFFLINE off shift), jobs arriving by hour, area and specialty. Every dispatch
decision is the policy's (`dispatch.policies.step`, `Policy.order`, `Policy.award`,
`assign_batch`); every status change goes through the state machine's
`check_transition`. Random draws come from streams keyed by (seed, job, artisan), so
every policy faces the same artisans, the same jobs and the same answers to the same
offers: the policies are compared on common random numbers.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Generator

from dispatch.dispatcher.engine import DispatcherConfig
from dispatch.dispatcher.matcher import MAX_ROUNDS, OVERFETCH
from dispatch.interventions.statemachine import (
    ARRIVED,
    ASSIGNED,
    CANCELLED,
    COMPLETED,
    EN_ROUTE,
    IN_PROGRESS,
    SEARCHING,
    UNFULFILLED,
    check_transition,
)
from dispatch.policies import (
    ArtisanHistory,
    Ask,
    Found,
    JobState,
    Policy,
    Verdict,
    step,
)
from dispatch.simulate.scenario import Scenario
from dispatch.simulate.world import PolicyRun, SimArtisan, SimJob, SimOffer, build_world
from matching import ArtisanIndex, Candidate, RankingPolicy

# The live dispatcher's timings and its matcher's overfetch: the same numbers here.
_LIVE = DispatcherConfig()
_HOUR = 3600.0


class Simulation:
    def __init__(
        self,
        scenario: Scenario,
        policy: Policy,
        seed: int,
        progress: Callable[[float], None] | None = None,
    ) -> None:
        self.s = scenario
        self.policy = policy
        self.seed = seed
        self.progress = progress
        self.artisans, self.jobs = build_world(scenario, seed)
        self.offers: list[SimOffer] = []
        self.index = ArtisanIndex(RankingPolicy(), capacity=max(16, len(self.artisans)))
        self.by_id = {a.id: a for a in self.artisans}
        self.now = 0.0
        self._heap: list[tuple[float, int, str, int, int]] = []
        self._seq = 0
        self.withdrawals = 0
        self.waiting_jobs: dict[int, None] = {}
        self.engaged: set[str] = (
            set()
        )  # artisans answering an offer (batched: left out)  # batched: SEARCHING, nothing pending

    # ---- the clock ----------------------------------------------------------------------
    def at(self, t: float, kind: str, a: int, b: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, a, b))

    def _rng(self, *keys: int) -> random.Random:
        h = self.seed
        for k in keys:
            h = (h * 1_000_003 + k + 1) % (1 << 61)
        return random.Random(h)

    def run(self) -> PolicyRun:
        for art in self.artisans:
            for start, end in art.shifts:
                self.at(start, "on", art.idx)
                self.at(end, "off", art.idx)
        for job in self.jobs:
            self.at(job.created_at, "job", job.idx)
        interval = self.policy.batch_interval_s
        if interval is not None:
            self.at(interval, "tick", 0)
        last_report = 0.0
        handlers: dict[str, Callable[[int, int], None]] = {
            "on": self._on,
            "off": self._off,
            "job": self._job,
            "step": self._step_event,
            "answer": self._answer,
            "award": self._award,
            "arrive": self._arrive,
            "start": self._start,
            "done": self._done,
            "withdraw": self._withdraw,
            "patience": self._patience,
            "tick": self._tick,
        }
        end = self.s.hours * _HOUR
        while self._heap:
            t, _, kind, a, b = heapq.heappop(self._heap)
            if kind == "tick" and not self._heap and not self.waiting_jobs:
                continue  # nothing left to happen: the batched clock stops too
            self.now = t
            handlers[kind](a, b)
            if self.progress is not None and t - last_report >= 600:
                self.progress(min(t, end) - min(last_report, end))
                last_report = t
        if self.progress is not None:
            self.progress(max(0.0, end - min(last_report, end)))
        for art in self.artisans:
            if art.online:
                art.online_s += self.now - art.online_since
        return PolicyRun(
            self.policy.name, self.jobs, self.artisans, self.offers, self.withdrawals, self.s.hours
        )

    # ---- artisans ---------------------------------------------------------------------------
    def _on(self, i: int, _: int) -> None:
        art = self.artisans[i]
        if art.online:  # still on a job from the shift before
            return
        art.online, art.online_since = True, self.now
        status = "BUSY" if art.job is not None else "ONLINE"
        self.index.upsert(art.id, art.lat, art.lon, art.specialty, art.level, art.rating, status)

    def _off(self, i: int, _: int) -> None:
        art = self.artisans[i]
        if art.job is not None:  # leaves once this job is done
            return
        self._go_offline(art)

    def _go_offline(self, art: SimArtisan) -> None:
        if not art.online:
            return
        art.online = False
        art.online_s += self.now - art.online_since
        self.index.set_status(art.id, "OFFLINE")

    # ---- jobs -------------------------------------------------------------------------------
    def _move(self, job: SimJob, target: str, role: str) -> None:
        check_transition(job.status, target, role)
        job.status = target
        job.history.append(target)

    def _job(self, j: int, _: int) -> None:
        job = self.jobs[j]
        job.search_started_at = job.created_at
        job.history.append(SEARCHING)
        self.at(job.created_at + self.s.demand.patience_s, "patience", j)
        self._kick(job)

    def _kick(self, job: SimJob) -> None:
        """Step the job now (as the live dispatcher does after a create, decline, withdraw)."""
        job.timer += 1
        self._step(job, offering=None)

    def _step_event(self, j: int, generation: int) -> None:
        job = self.jobs[j]
        if job.timer == generation and job.status == SEARCHING:
            self._step(job, offering=None)

    def _expire(self, job: SimJob) -> tuple[float, ...]:
        pending = []
        for o in job.offers:
            offer = self.offers[o]
            if offer.status == "PENDING":
                if offer.expires_at <= self.now:
                    offer.status = "EXPIRED"
                    self._free_engaged(offer, o, answered=False)
                else:
                    pending.append(offer.expires_at)
        return tuple(pending)

    def _free_engaged(self, offer: SimOffer, o: int, *, answered: bool | None) -> None:
        art = self.artisans[offer.artisan]
        if art.engaged == o:
            art.engaged = None
            self.engaged.discard(art.id)
        if answered is not None:  # expired (False) or declined: a refusal on their record
            art.answers.append((self.now, False))

    def _state(self, job: SimJob, pending: tuple[float, ...]) -> JobState:
        sent = [self.offers[o].sent_at for o in job.offers]
        last = max((t for t in sent if t >= job.search_started_at), default=None)
        return JobState(
            job.created_at, job.search_started_at, job.search_round, pending, last, len(job.offers)
        )

    def _step(self, job: SimJob, offering: bool | None, prefer: str | None = None) -> None:
        if job.status != SEARCHING:
            return
        pending = self._expire(job)
        held = any(self.offers[o].status == "HELD" for o in job.offers)
        if offering is None:
            offering = self.policy.batch_interval_s is None
        if held:  # best_accept: an award is due; hold back new offers until then
            offering = False
            pending = (*pending, job.award_at or self.now)
        plan = self._plan(job, pending, offering)
        verdict = self._drive(job, plan, None, prefer)
        self._settle(job, verdict)

    def _plan(
        self, job: SimJob, pending: tuple[float, ...], offering: bool
    ) -> Generator[Ask, Found, Verdict]:
        return step(
            self.policy,
            self.now,
            self._state(job, pending),
            search_window_s=_LIVE.search_window_s,
            recheck_s=_LIVE.recheck_s,
            offering=offering,
        )

    def _drive(
        self, job: SimJob, plan: Generator[Ask, Found, Verdict], ask: Ask | None, prefer: str | None
    ) -> Verdict:
        try:
            if ask is None:
                ask = next(plan)
            while True:
                ask = plan.send(self._offer(job, ask, prefer))
        except StopIteration as done:
            verdict: Verdict = done.value
            return verdict

    def _settle(self, job: SimJob, verdict: Verdict) -> None:
        job.search_round = verdict.search_round
        if verdict.next_check_at is None:
            self._move(job, UNFULFILLED, "SYSTEM")
            self.waiting_jobs.pop(job.idx, None)
            return
        job.timer += 1
        self.at(max(self.now, verdict.next_check_at), "step", job.idx, job.timer)
        if any(self.offers[o].status in ("PENDING", "HELD") for o in job.offers):
            self.waiting_jobs.pop(job.idx, None)
        else:
            self.waiting_jobs[job.idx] = None

    def _history(self, ids: list[str]) -> dict[str, ArtisanHistory]:
        window = self.policy.params.window_s  # type: ignore[union-attr]
        out = {}
        for aid in ids:
            art = self.by_id[aid]
            while art.answers and art.answers[0][0] < self.now - window:
                art.answers.popleft()
            accepted = sum(1 for _, ok in art.answers if ok)
            out[aid] = ArtisanHistory(art.last_job_ended_at, len(art.answers), accepted)
        return out

    def _offer(self, job: SimJob, ask: Ask, prefer: str | None) -> Found:
        """The matcher's answer to an Ask: the first `n` free candidates, in the policy's
        order, within the radius and not asked yet (as `Matcher.offer` does live)."""
        wanted, sent, waiting = ask.n, 0, False
        skip = {self.artisans[a].id for a in job.asked}
        for _ in range(MAX_ROUNDS):
            k = wanted + OVERFETCH
            cands = self.index.query(
                job.lat, job.lon, job.specialty, k=k, max_km=ask.radius_km, exclude=skip
            )
            if not cands:
                break
            history = (
                self._history([c.artisan_id for c in cands]) if self.policy.needs_history else None
            )
            ranked = self.policy.order(self.now, cands, history)
            if prefer is not None:
                ranked.sort(key=lambda c: c.artisan_id != prefer)
            for c in ranked:
                skip.add(c.artisan_id)
                art = self.by_id[c.artisan_id]
                if art.engaged is not None:
                    waiting = True
                    continue
                if sent < wanted:
                    self._send(job, art, c)
                    sent += 1
            wanted_left = wanted - sent
            if wanted_left <= 0 or len(cands) < k:
                break
        return Found(sent, waiting)

    def _send(self, job: SimJob, art: SimArtisan, c: Candidate) -> None:
        o = len(self.offers)
        offer = SimOffer(
            job.idx,
            art.idx,
            c.distance_km,
            c.score,
            self.now,
            self.now + self.policy.offer_timeout_s,
        )
        self.offers.append(offer)
        job.offers.append(o)
        job.asked.add(art.idx)
        art.engaged = o
        self.engaged.add(art.id)
        if job.first_offer_at is None:
            job.first_offer_at = self.now
        while art.offers_at and art.offers_at[0] < self.now - _HOUR:
            art.offers_at.popleft()
        b = self.s.behaviour
        rng = self._rng(job.idx, art.idx, len(job.offers))
        fatigue = max(0.0, 1.0 - b.fatigue_per_offer * len(art.offers_at))
        art.offers_at.append(self.now)
        if rng.random() < b.ignore:
            return  # no answer: it expires
        p = b.accept * math.exp(-c.distance_km / b.accept_distance_km) * fatigue
        accept = rng.random() < p
        delay = rng.uniform(*b.response_s)
        self.at(self.now + delay, "answer", o, int(accept))

    def _answer(self, o: int, accept: int) -> None:
        offer = self.offers[o]
        job = self.jobs[offer.job]
        if offer.status != "PENDING" or offer.expires_at <= self.now or job.status != SEARCHING:
            return  # too late (409 live): nothing changes
        if not accept:
            offer.status = "DECLINED"
            self._free_engaged(offer, o, answered=True)
            self._kick(job)
            return
        offer.accepted = True
        window = self.policy.accept_window_s
        if window > 0:
            offer.status = "HELD"
            if job.award_at is None:
                job.award_at = self.now + window
                self.at(job.award_at, "award", job.idx)
            return
        self._assign(job, o)

    def _award(self, j: int, _: int) -> None:
        job = self.jobs[j]
        job.award_at = None
        held = [o for o in job.offers if self.offers[o].status == "HELD"]
        if job.status != SEARCHING or not held:
            return
        winner_id = self.policy.award(
            [(self.artisans[self.offers[o].artisan].id, self.offers[o].score) for o in held]
        )
        self._assign(
            job, next(o for o in held if self.artisans[self.offers[o].artisan].id == winner_id)
        )

    def _assign(self, job: SimJob, o: int) -> None:
        offer = self.offers[o]
        art = self.artisans[offer.artisan]
        self._move(job, ASSIGNED, "ARTISAN")
        offer.status = "ACCEPTED"
        art.engaged = None
        self.engaged.discard(art.id)
        art.answers.append((self.now, True))
        for other in job.offers:
            oo = self.offers[other]
            if oo.status in ("PENDING", "HELD"):
                oo.status = "TAKEN"
                self._free_engaged(oo, other, answered=None)
        assert art.job is None, "an artisan never holds two jobs"
        art.job = job.idx
        job.artisan = art.idx
        job.ever_assigned = True
        job.assigned_at = job.assigned_at or self.now
        job.pickup_km = offer.distance_km
        self.waiting_jobs.pop(job.idx, None)
        self.index.set_status(art.id, "BUSY")
        art.busy_since = self.now
        rng = self._rng(job.idx, art.idx, -1)
        self._move(job, EN_ROUTE, "ARTISAN")
        travel_s = offer.distance_km * self.s.travel.road_factor / self.s.travel.speed_kmh * _HOUR
        if rng.random() < self.s.behaviour.withdrawal:
            after = rng.uniform(*self.s.behaviour.withdraw_after_s)
            if after < travel_s:
                self.at(self.now + after, "withdraw", job.idx, art.idx)
                return
        self.at(self.now + travel_s, "arrive", job.idx, art.idx)

    def _release(self, art: SimArtisan, job: SimJob, moved: bool = True) -> None:
        art.busy_s += self.now - art.busy_since
        art.tenures.append((job.idx, art.busy_since, self.now))
        art.job = None
        art.last_job_ended_at = self.now
        if not art.online or not any(a <= self.now < b for a, b in art.shifts):
            self._go_offline(art)
        else:
            if moved:
                art.lat, art.lon = job.lat, job.lon
            self.index.upsert(
                art.id, art.lat, art.lon, art.specialty, art.level, art.rating, "ONLINE"
            )

    def _withdraw(self, j: int, i: int) -> None:
        job, art = self.jobs[j], self.artisans[i]
        if job.artisan != i or job.status not in (ASSIGNED, EN_ROUTE, ARRIVED):
            return
        self._move(job, SEARCHING, "ARTISAN")
        self.withdrawals += 1
        # The withdrawn accept counts against them: the offer becomes DECLINED, as live.
        art.answers.append((self.now, False))
        for o in job.offers:
            if self.offers[o].status == "ACCEPTED" and self.offers[o].artisan == i:
                self.offers[o].status = "DECLINED"
        ended = art.last_job_ended_at
        self._release(art, job, moved=False)
        art.last_job_ended_at = ended  # a withdrawal is no finished job
        job.artisan = None
        job.search_started_at, job.search_round = self.now, 0
        self._kick(job)

    def _arrive(self, j: int, i: int) -> None:
        job = self.jobs[j]
        if job.artisan != i or job.status != EN_ROUTE:
            return
        self._move(job, ARRIVED, "ARTISAN")
        self.at(self.now + 60.0, "start", j, i)

    def _start(self, j: int, i: int) -> None:
        job = self.jobs[j]
        if job.artisan != i or job.status != ARRIVED:
            return
        self._move(job, IN_PROGRESS, "ARTISAN")
        lo, hi = self.s.work_minutes
        self.at(self.now + self._rng(j, i, -2).uniform(lo, hi) * 60.0, "done", j, i)

    def _done(self, j: int, i: int) -> None:
        job, art = self.jobs[j], self.artisans[i]
        self._move(job, COMPLETED, "ARTISAN")
        art.earnings += self.s.prices.get(job.specialty, 0.0)
        self._release(art, job)

    def _patience(self, j: int, _: int) -> None:
        job = self.jobs[j]
        if job.status != SEARCHING:
            return
        self._move(job, CANCELLED, "CLIENT")
        for o in job.offers:
            offer = self.offers[o]
            if offer.status in ("PENDING", "HELD"):
                offer.status = "REVOKED"
                self._free_engaged(offer, o, answered=None)
        self.waiting_jobs.pop(j, None)

    # ---- the batched policy's tick ------------------------------------------------------------
    def _tick(self, _: int, __: int) -> None:
        interval = self.policy.batch_interval_s
        assert interval is not None
        k = self.policy.params.k  # type: ignore[union-attr]
        parked: list[tuple[SimJob, Generator[Ask, Found, Verdict], Ask]] = []
        for j in list(self.waiting_jobs):
            job = self.jobs[j]
            if job.status != SEARCHING:
                self.waiting_jobs.pop(j, None)
                continue
            plan = self._plan(job, self._expire(job), True)
            try:
                parked.append((job, plan, next(plan)))
            except StopIteration as done:
                self._settle(job, done.value)
        # One assignment per search radius, as live (Dispatcher.batch_once).
        chosen: dict[int, Candidate | None] = {}
        for radius in sorted({ask.radius_km for _, _, ask in parked}):
            group = [job for job, _, ask in parked if ask.radius_km == radius]
            taken = self.engaged | {c.artisan_id for c in chosen.values() if c is not None}
            chosen |= self.index.assign(
                [(job.idx, job.lat, job.lon, job.specialty) for job in group],
                k=k,
                max_km=radius,
                exclude=taken,
                exclude_per_job={
                    job.idx: [self.artisans[a].id for a in job.asked] for job in group
                },
            )
        for job, plan, first in parked:
            pick = chosen.get(job.idx)
            self._settle(job, self._drive(job, plan, first, pick.artisan_id if pick else None))
        self.at(self.now + interval, "tick", 0)


def simulate(
    scenario: Scenario, policy: Policy, seed: int, progress: Callable[[float], None] | None = None
) -> PolicyRun:
    return Simulation(scenario, policy, seed, progress).run()
