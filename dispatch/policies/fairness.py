"""The `fair` ranking: idle time earns a bonus, refusing offers costs, merit is capped.

Research on ride-hailing found rating-ranked dispatch gives "winner takes all"
incomes; this ranking spreads work by adding to the matcher's distance:
- minus an idle bonus: hours since the artisan's last job × `idle_km_per_hour`,
  capped at `idle_cap_km` (never had a job: the cap);
- plus an acceptance term: (1 - acceptance rate) × `acceptance_km`, counted once the
  artisan had `min_offers` offers in the sliding window (withdrawals count as refusals);
- minus the matcher's level and rating bonus, capped at `merit_cap_km`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from matching import Candidate

if TYPE_CHECKING:
    from dispatch.policies.policies import FairParams


@dataclass(frozen=True, slots=True)
class ArtisanHistory:
    """One artisan's recent record, over the fair policy's sliding window."""

    last_job_ended_at: float | None = None
    offers: int = 0  # answered or expired offers in the window
    accepted: int = 0  # of which accepted and not withdrawn

    def acceptance_rate(self, min_offers: int) -> float | None:
        if self.offers < max(1, min_offers):
            return None
        return self.accepted / self.offers


def fair_score(now: float, c: Candidate, h: ArtisanHistory, p: FairParams) -> float:
    merit = min(c.distance_km - c.score, p.merit_cap_km)
    if h.last_job_ended_at is None:
        idle = p.idle_cap_km
    else:
        idle = min(p.idle_cap_km, max(0.0, now - h.last_job_ended_at) / 3600.0 * p.idle_km_per_hour)
    rate = h.acceptance_rate(p.min_offers)
    refusal = 0.0 if rate is None else (1.0 - rate) * p.acceptance_km
    return c.distance_km - merit - idle + refusal


def fair_order(
    now: float,
    candidates: Sequence[Candidate],
    history: dict[str, ArtisanHistory],
    params: FairParams,
) -> list[Candidate]:
    """The candidates re-scored (Candidate.score is the fair score), best first."""
    empty = ArtisanHistory()
    rescored = [
        Candidate(
            c.artisan_id,
            c.distance_km,
            fair_score(now, c, history.get(c.artisan_id, empty), params),
        )
        for c in candidates
    ]
    rescored.sort(key=lambda c: (c.score, c.distance_km, c.artisan_id))
    return rescored
