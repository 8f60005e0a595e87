"""The simulated world: artisans, jobs and offers, and the seeded draw of a day.

The artisans (specialty, level, rating, home, shift) and the jobs (time, place,
specialty) depend on the scenario and the seed only, so every policy meets the same
ones."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from dispatch.interventions.statemachine import SEARCHING
from dispatch.simulate.scenario import Area, Scenario

_HOUR = 3600.0


@dataclass(slots=True)
class SimArtisan:
    idx: int
    id: str
    specialty: str
    level: str
    rating: float
    lat: float
    lon: float
    # When they work: (from, to) in seconds; a shift past midnight also covers the start
    # of the day (the previous evening's shift still running).
    shifts: tuple[tuple[float, float], ...]
    online: bool = False
    job: int | None = None
    engaged: int | None = None  # the offer (index) they are answering
    online_s: float = 0.0
    online_since: float = 0.0
    busy_since: float = 0.0
    busy_s: float = 0.0
    earnings: float = 0.0
    last_job_ended_at: float | None = None
    offers_at: deque[float] = field(default_factory=deque)
    answers: deque[tuple[float, bool]] = field(default_factory=deque)
    # (job, from, to): each job the artisan held, for the invariants' checks.
    tenures: list[tuple[int, float, float]] = field(default_factory=list)


@dataclass(slots=True)
class SimOffer:
    job: int
    artisan: int
    distance_km: float
    score: float
    sent_at: float
    expires_at: float
    status: str = "PENDING"
    accepted: bool = False  # the artisan said yes (and in time)


@dataclass(slots=True)
class SimJob:
    idx: int
    created_at: float
    lat: float
    lon: float
    specialty: str
    status: str = SEARCHING
    search_started_at: float = 0.0
    search_round: int = 0
    offers: list[int] = field(default_factory=list)
    asked: set[int] = field(default_factory=set)
    artisan: int | None = None
    first_offer_at: float | None = None
    assigned_at: float | None = None
    pickup_km: float | None = None
    timer: int = 0  # the live timer's generation (older STEP events are stale)
    award_at: float | None = None
    ever_assigned: bool = False
    history: list[str] = field(default_factory=list)


@dataclass(slots=True)
class PolicyRun:
    policy: str
    jobs: list[SimJob]
    artisans: list[SimArtisan]
    offers: list[SimOffer]
    withdrawals: int
    hours: float


def _point(rng: np.random.Generator, areas: tuple[Area, ...], n: int) -> npt.NDArray[np.float64]:
    weights = np.array([a.weight for a in areas], dtype=float)
    pick = rng.choice(len(areas), size=n, p=weights / weights.sum())
    radius = np.array([areas[i].radius_km for i in pick]) * np.sqrt(rng.random(n))
    angle = rng.random(n) * 2 * math.pi
    lat0 = np.array([areas[i].lat for i in pick])
    lon0 = np.array([areas[i].lon for i in pick])
    lat = lat0 + radius * np.cos(angle) / 111.2
    lon = lon0 + radius * np.sin(angle) / (111.2 * np.cos(np.radians(lat0)))
    return np.stack([lat, lon], axis=1)


def _choice(rng: np.random.Generator, shares: dict[str, float], n: int) -> list[str]:
    names = sorted(shares)
    p = np.array([shares[k] for k in names], dtype=float)
    return [names[i] for i in rng.choice(len(names), size=n, p=p / p.sum())]


def build_world(scenario: Scenario, seed: int) -> tuple[list[SimArtisan], list[SimJob]]:
    """The same artisans and jobs for every policy (a function of the seed only)."""
    rng = np.random.default_rng(seed)
    a = scenario.artisans
    homes = _point(rng, a.areas, a.count)
    specs = _choice(rng, a.specialties, a.count)
    levels = _choice(rng, a.levels, a.count)
    ratings = np.clip(rng.normal(a.rating_mean, a.rating_sd, a.count), 1.0, 5.0)
    shares = np.array([s.share for s in a.shifts])
    shifts = rng.choice(len(a.shifts), size=a.count, p=shares / shares.sum())
    jitter = rng.uniform(-0.5, 0.5, a.count) * _HOUR
    artisans = []
    day = 24 * _HOUR
    for i in range(a.count):
        sh = a.shifts[int(shifts[i])]
        start = sh.start_hour * _HOUR + float(jitter[i])
        end = start + sh.hours * _HOUR
        spans = [(max(0.0, start), end)]
        if end > day:  # yesterday's shift of the same kind, still running at midnight
            spans.insert(0, (0.0, end - day))
        artisans.append(
            SimArtisan(
                i, f"00000000-0000-4000-8000-{i:012x}", specs[i], levels[i], float(ratings[i]),
                float(homes[i, 0]), float(homes[i, 1]), tuple(spans),
            )
        )  # fmt: skip
    d = scenario.demand
    hours = math.ceil(scenario.hours)
    weights = np.array([d.by_hour[h % 24] for h in range(hours)], dtype=float)
    weights *= np.minimum(1.0, scenario.hours - np.arange(hours))  # a partial last hour
    hour = rng.choice(hours, size=d.jobs, p=weights / weights.sum())
    times = np.sort((hour + rng.random(d.jobs)) * _HOUR)
    where = _point(rng, d.areas, d.jobs)
    jspecs = _choice(rng, d.specialties, d.jobs)
    jobs = [
        SimJob(j, float(times[j]), float(where[j, 0]), float(where[j, 1]), jspecs[j])
        for j in range(d.jobs)
    ]
    return artisans, jobs
