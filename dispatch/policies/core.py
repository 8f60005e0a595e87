"""One dispatch step as a pure generator: the policy decides, the driver does the I/O.

    gen = step(policy, now, job, search_window_s=..., recheck_s=...)
    ask = next(gen)                      # Ask: offer up to n free candidates within radius
    ask = gen.send(Found(sent, waiting)) # maybe a wider Ask ...
    # ... until StopIteration carries the Verdict

The driver answers each `Ask` by ranking candidates (the matcher), letting the policy
order them (`Policy.order`), and offering the first `n` free ones not yet asked for
this job. Times are seconds on one clock of the driver's choosing.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dispatch.policies.policies import Policy


@dataclass(frozen=True, slots=True)
class JobState:
    """What the step needs to know of one SEARCHING job, after its due offers expired."""

    created_at: float
    search_started_at: float
    search_round: int
    # Expiry times of the job's offers still PENDING.
    pending_expiries: tuple[float, ...] = ()
    # When the latest offer of the current search was sent (None: none yet).
    last_offer_at: float | None = None
    # Offers sent for this job so far (any outcome).
    asked: int = 0


@dataclass(frozen=True, slots=True)
class Ask:
    """Offer the job to up to `n` free candidates within `radius_km`, not asked yet."""

    search_round: int
    radius_km: float
    n: int


@dataclass(frozen=True, slots=True)
class Found:
    sent: int
    # Some eligible candidate is answering another job's offer right now.
    waiting: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    search_round: int
    # When to step the job again (None: give up, the job is UNFULFILLED).
    next_check_at: float | None
    sent: int = 0

    @property
    def give_up(self) -> bool:
        return self.next_check_at is None


def step(
    policy: Policy,
    now: float,
    job: JobState,
    *,
    search_window_s: float,
    recheck_s: float,
    offering: bool = True,
) -> Generator[Ask, Found, Verdict]:
    """Drive one job: top its offers up as the policy wants, widen the radius when the
    current one has nobody left, give up when even the widest has nobody.

    `offering=False` (a batched policy between its ticks): expire and wait only; offers
    go out at the next tick."""
    search_round = job.search_round
    pending = job.pending_expiries
    wanted = policy.wanted(now, job) if offering else 0
    sent = 0
    waiting = False
    if wanted > 0:
        found = yield Ask(search_round, policy.radius_km(search_round), wanted)
        sent, waiting = found.sent, found.waiting
        # Nobody free within this radius and nothing pending: widen, step by step.
        while sent == 0 and not pending and search_round < policy.widenings:
            search_round += 1
            found = yield Ask(search_round, policy.radius_km(search_round), wanted)
            sent, waiting = found.sent, waiting or found.waiting
    if sent or pending:
        expiries = list(pending)
        if sent:
            expiries.append(now + policy.offer_timeout_s)
        last = now if sent else job.last_offer_at
        return Verdict(search_round, policy.next_check(now, min(expiries), last), sent)
    if not offering:
        return Verdict(search_round, policy.next_check(now, None, job.last_offer_at))
    if waiting and now - job.search_started_at < search_window_s:
        return Verdict(search_round, now + recheck_s)
    return Verdict(search_round, None)
