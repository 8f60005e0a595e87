"""The five dispatch policies and their parameters (one typed, frozen object each).

The operator settings every policy shares come from `Settings` (ZENDO_OFFER_TIMEOUT_S,
ZENDO_OFFER_BATCH, ZENDO_MATCH_RADIUS_KM); each policy's own knobs are the defaults
of its parameter object (named constants, not environment variables).

- `sequential`: today's cascade: the best `offer_batch` first; on decline or timeout
  the next; the radius widens once to twice its size; first accept wins.
- `staggered`: the best `batch` at once, the next `batch` after `wave_delay_s` if
  nobody accepted, the radius growing step by step (nammayatri's batches).
- `best_accept`: staggered, but accepts arriving within `accept_window_s` of the
  first are ranked and the best-scored acceptor wins (Lyft's best acceptance).
- `batched`: every `interval_s` all jobs waiting for an offer are assigned together,
  a global minimum of total score (DiDi's batch dispatch).
- `fair`: sequential, ranked with an idle-time bonus and an acceptance term, and the
  level/rating bonus capped (see `fairness.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from core.settings import DISPATCH_POLICIES, Settings
from dispatch.policies.core import JobState
from dispatch.policies.fairness import ArtisanHistory, fair_order
from matching import Candidate

POLICY_NAMES: Final = DISPATCH_POLICIES


@dataclass(frozen=True, slots=True)
class SequentialParams:
    # The one widened search reaches twice the radius.
    widen_factor: float = 2.0
    widenings: int = 1


@dataclass(frozen=True, slots=True)
class StaggeredParams:
    batch: int = 3
    # A new wave of offers this long after the previous one, while nobody accepted.
    wave_delay_s: float = 5.0
    # Round r searches radius × (1 + widen_step × r), for r up to `widenings`.
    widen_step: float = 0.5
    widenings: int = 2


@dataclass(frozen=True, slots=True)
class BestAcceptParams:
    staggered: StaggeredParams = field(default_factory=StaggeredParams)
    # Accepts arriving within this window after the first are ranked together.
    accept_window_s: float = 2.0


@dataclass(frozen=True, slots=True)
class BatchedParams:
    interval_s: float = 2.0
    # Candidates per job entering the assignment.
    k: int = 10
    widen_factor: float = 2.0
    widenings: int = 1


@dataclass(frozen=True, slots=True)
class FairParams:
    # Bonus per hour since the artisan's last job (or since the window began), in km.
    idle_km_per_hour: float = 2.0
    idle_cap_km: float = 2.0
    # Penalty (1 - acceptance rate) × this, once the artisan had `min_offers` offers
    # within `window_s`; a withdrawal after accepting counts as a refusal.
    acceptance_km: float = 2.0
    min_offers: int = 5
    window_s: float = 3600.0
    # The level and rating bonus of the matcher's score is capped at this many km, so
    # level and rating cannot take every job.
    merit_cap_km: float = 0.5
    widen_factor: float = 2.0
    widenings: int = 1


Params = SequentialParams | StaggeredParams | BestAcceptParams | BatchedParams | FairParams


@dataclass(frozen=True, slots=True)
class Policy:
    """A named policy: shared settings + its own parameters. Pure and immutable."""

    name: str
    params: Params
    offer_timeout_s: float
    radius_base_km: float
    offer_batch: int = 1

    # ---- radius -----------------------------------------------------------------------
    @property
    def widenings(self) -> int:
        p = self.params
        if isinstance(p, BestAcceptParams):
            return p.staggered.widenings
        return p.widenings

    def radius_km(self, search_round: int) -> float:
        p = self.params
        if isinstance(p, BestAcceptParams):
            p = p.staggered
        if isinstance(p, StaggeredParams):
            return self.radius_base_km * (1.0 + p.widen_step * search_round)
        return self.radius_base_km * (p.widen_factor if search_round else 1.0)

    # ---- offers -----------------------------------------------------------------------
    @property
    def staggered(self) -> StaggeredParams | None:
        p = self.params
        if isinstance(p, BestAcceptParams):
            return p.staggered
        return p if isinstance(p, StaggeredParams) else None

    @property
    def batch_interval_s(self) -> float | None:
        """Batched: offers go out on this tick only (None: on every step)."""
        return self.params.interval_s if isinstance(self.params, BatchedParams) else None

    @property
    def accept_window_s(self) -> float:
        """best_accept: how long accepts are held and ranked (0: first accept wins)."""
        return self.params.accept_window_s if isinstance(self.params, BestAcceptParams) else 0.0

    @property
    def first_wave(self) -> int:
        """Offers written by the job's creating statement (0: the first step sends them)."""
        if self.batch_interval_s is not None or isinstance(self.params, FairParams):
            return 0
        stag = self.staggered
        return stag.batch if stag is not None else self.offer_batch

    def wanted(self, now: float, job: JobState) -> int:
        """How many new offers to send now."""
        pending = len(job.pending_expiries)
        stag = self.staggered
        if stag is None:
            return max(0, (1 if self.batch_interval_s is not None else self.offer_batch) - pending)
        if pending == 0 or job.last_offer_at is None:
            return stag.batch
        return stag.batch if now >= job.last_offer_at + stag.wave_delay_s else 0

    def next_check(
        self, now: float, earliest_expiry: float | None, last_offer_at: float | None
    ) -> float:
        """When to step the job again while offers are out (or a batched job waits)."""
        interval = self.batch_interval_s
        if interval is not None and earliest_expiry is None:
            return (int(now / interval) + 1) * interval  # offers go out on the next tick
        if earliest_expiry is None:
            raise ValueError("next_check needs an expiry unless the policy is batched")
        stag = self.staggered
        if stag is not None and last_offer_at is not None:
            wave = last_offer_at + stag.wave_delay_s
            # A wave due now that found nobody new: the next one a delay later.
            return min(earliest_expiry, wave if wave > now else now + stag.wave_delay_s)
        return earliest_expiry

    # ---- ranking ----------------------------------------------------------------------
    @property
    def needs_history(self) -> bool:
        return isinstance(self.params, FairParams)

    def order(
        self,
        now: float,
        candidates: Sequence[Candidate],
        history: dict[str, ArtisanHistory] | None = None,
    ) -> list[Candidate]:
        """The candidates in the order offers go out (the matcher's, except `fair`)."""
        if isinstance(self.params, FairParams):
            return fair_order(now, candidates, history or {}, self.params)
        return list(candidates)

    def award(self, held: Sequence[tuple[str, float]]) -> str:
        """best_accept: of the held accepts (artisan id, score), the winner."""
        return min(held, key=lambda a: (a[1], a[0]))[0]


def policy_from_settings(settings: Settings) -> Policy:
    """The policy ZENDO_DISPATCH_POLICY names, with the shared operator settings."""
    return make_policy(
        settings.dispatch_policy,
        offer_timeout_s=settings.offer_timeout_s,
        radius_km=settings.match_radius_km,
        offer_batch=settings.offer_batch,
    )


def make_policy(
    name: str,
    *,
    offer_timeout_s: float,
    radius_km: float,
    offer_batch: int = 1,
    params: Params | None = None,
) -> Policy:
    defaults: dict[str, Params] = {
        "sequential": SequentialParams(),
        "staggered": StaggeredParams(),
        "best_accept": BestAcceptParams(),
        "batched": BatchedParams(),
        "fair": FairParams(),
    }
    if name not in defaults:
        raise ValueError(f"unknown dispatch policy {name!r}; one of {', '.join(POLICY_NAMES)}")
    chosen = params if params is not None else defaults[name]
    if type(chosen) is not type(defaults[name]):
        raise ValueError(f"policy {name!r} takes {type(defaults[name]).__name__}")
    return Policy(name, chosen, offer_timeout_s, radius_km, offer_batch)
