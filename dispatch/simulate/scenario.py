"""Scenarios: who works when and where, what is asked, how artisans answer, travel.

A scenario is a YAML mapping (every key optional; the defaults are `paris-day`'s):

    hours: 24
    artisans: {count, specialties: {NAME: share}, levels: {LEVEL: share},
               rating: {mean, sd}, shifts: [{start_hour, hours, share}],
               areas: [{lat, lon, radius_km, weight} | {h3, weight}]}
    demand: {jobs, by_hour: [24 weights], specialties: {NAME: share},
             areas: [...as above], patience_s}
    behaviour: {accept: p, accept_distance_km, fatigue_per_offer, ignore,
                response_s: [min, max], withdrawal, withdraw_after_s: [min, max]}
    travel: {speed_kmh, road_factor}
    work_minutes: [min, max]
    prices: {NAME: amount}

The accept probability of an offer is accept × exp(-distance / accept_distance_km) ×
max(0, 1 - fatigue_per_offer × offers the artisan got in the last hour); `ignore` is
the chance an offer gets no answer at all (it times out).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import h3
import yaml

from matching.codes import LEVELS, SPECIALTIES


class ScenarioError(ValueError):
    """A scenario file is missing, unreadable or invalid."""


@dataclass(frozen=True, slots=True)
class Area:
    lat: float
    lon: float
    radius_km: float
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Shift:
    start_hour: float
    hours: float
    share: float


@dataclass(frozen=True, slots=True)
class Artisans:
    count: int = 2000
    specialties: dict[str, float] = field(
        default_factory=lambda: {
            "PLUMBER": 0.3,
            "ELECTRICIAN": 0.25,
            "LOCKSMITH": 0.2,
            "HEATING": 0.15,
            "GLAZIER": 0.05,
            "APPLIANCE_REPAIR": 0.05,
        }
    )
    levels: dict[str, float] = field(
        default_factory=lambda: {"STANDARD": 0.6, "PRO_PLUS": 0.3, "ELITE": 0.1}
    )
    rating_mean: float = 4.4
    rating_sd: float = 0.35
    shifts: tuple[Shift, ...] = (
        Shift(6, 9, 0.35),
        Shift(10, 9, 0.35),
        Shift(15, 9, 0.2),
        Shift(22, 9, 0.1),
    )
    areas: tuple[Area, ...] = (
        Area(48.8566, 2.3522, 5.0, 0.6),  # Paris intra-muros
        Area(48.8566, 2.3522, 15.0, 0.4),  # the inner suburbs
    )


@dataclass(frozen=True, slots=True)
class Demand:
    jobs: int = 5000
    # Relative job arrivals per hour of the day (an urgent-repair curve: evening peak).
    by_hour: tuple[float, ...] = (
        2, 1.5, 1, 1, 1, 1.5, 3, 5, 6, 6, 6, 6, 6, 6, 6, 6, 6.5, 7, 8, 8, 7, 5, 4, 3,
    )  # fmt: skip
    specialties: dict[str, float] = field(
        default_factory=lambda: {
            "PLUMBER": 0.35,
            "ELECTRICIAN": 0.25,
            "LOCKSMITH": 0.2,
            "HEATING": 0.12,
            "GLAZIER": 0.04,
            "APPLIANCE_REPAIR": 0.04,
        }
    )
    areas: tuple[Area, ...] = (
        Area(48.8566, 2.3522, 5.0, 0.7),
        Area(48.8566, 2.3522, 15.0, 0.3),
    )
    # A client still waiting this long after asking cancels.
    patience_s: float = 900.0


@dataclass(frozen=True, slots=True)
class Behaviour:
    accept: float = 0.85
    accept_distance_km: float = 10.0
    fatigue_per_offer: float = 0.06
    ignore: float = 0.12
    response_s: tuple[float, float] = (2.0, 15.0)
    withdrawal: float = 0.03
    withdraw_after_s: tuple[float, float] = (60.0, 600.0)


@dataclass(frozen=True, slots=True)
class Travel:
    speed_kmh: float = 25.0
    road_factor: float = 1.3


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str = "paris-day"
    hours: float = 24.0
    artisans: Artisans = field(default_factory=Artisans)
    demand: Demand = field(default_factory=Demand)
    behaviour: Behaviour = field(default_factory=Behaviour)
    travel: Travel = field(default_factory=Travel)
    work_minutes: tuple[float, float] = (30.0, 90.0)
    prices: dict[str, float] = field(
        default_factory=lambda: {
            "PLUMBER": 120.0,
            "ELECTRICIAN": 110.0,
            "LOCKSMITH": 150.0,
            "HEATING": 140.0,
            "GLAZIER": 130.0,
            "APPLIANCE_REPAIR": 90.0,
        }
    )


BUILTIN = {"paris-day": Scenario()}


def _area(raw: Any) -> Area:
    if not isinstance(raw, dict):
        raise ScenarioError(f"an area must be a mapping, got {raw!r}")
    weight = float(raw.get("weight", 1.0))
    if "h3" in raw:
        cell = str(raw["h3"])
        if not h3.is_valid_cell(cell):
            raise ScenarioError(f"not an H3 cell: {cell!r}")
        lat, lon = h3.cell_to_latlng(cell)
        # The disc of the cell's area: a uniform draw over it.
        radius = math.sqrt(h3.cell_area(cell, unit="km^2") / math.pi)
        return Area(lat, lon, radius, weight)
    return Area(float(raw["lat"]), float(raw["lon"]), float(raw["radius_km"]), weight)


def _shares(raw: Any, allowed: tuple[str, ...], what: str) -> dict[str, float]:
    if not isinstance(raw, dict) or not raw:
        raise ScenarioError(f"{what} must be a non-empty mapping")
    unknown = set(raw) - set(allowed)
    if unknown:
        raise ScenarioError(f"unknown {what}: {sorted(unknown)}; expected some of {allowed}")
    shares = {str(k): float(v) for k, v in raw.items()}
    if any(v < 0 for v in shares.values()) or sum(shares.values()) <= 0:
        raise ScenarioError(f"{what} shares must be >= 0 and not all zero")
    return shares


def _pair(raw: Any, what: str) -> tuple[float, float]:
    lo, hi = (float(x) for x in raw)
    if not 0 <= lo <= hi:
        raise ScenarioError(f"{what} must be [min, max] with 0 <= min <= max")
    return lo, hi


def _build(raw: dict[str, Any]) -> Scenario:
    base = Scenario()
    known = {f.name for f in fields(Scenario)}
    unknown = set(raw) - known
    if unknown:
        raise ScenarioError(f"unknown scenario keys: {sorted(unknown)}")
    a, d, b, t = base.artisans, base.demand, base.behaviour, base.travel
    ra, rd, rb, rt = (raw.get(k) or {} for k in ("artisans", "demand", "behaviour", "travel"))
    artisans = Artisans(
        count=int(ra.get("count", a.count)),
        specialties=_shares(ra["specialties"], SPECIALTIES, "specialties")
        if "specialties" in ra
        else a.specialties,
        levels=_shares(ra["levels"], LEVELS, "levels") if "levels" in ra else a.levels,
        rating_mean=float((ra.get("rating") or {}).get("mean", a.rating_mean)),
        rating_sd=float((ra.get("rating") or {}).get("sd", a.rating_sd)),
        shifts=tuple(
            Shift(float(s["start_hour"]), float(s["hours"]), float(s["share"]))
            for s in ra["shifts"]
        )
        if "shifts" in ra
        else a.shifts,
        areas=tuple(_area(x) for x in ra["areas"]) if "areas" in ra else a.areas,
    )
    demand = Demand(
        jobs=int(rd.get("jobs", d.jobs)),
        by_hour=tuple(float(x) for x in rd["by_hour"]) if "by_hour" in rd else d.by_hour,
        specialties=_shares(rd["specialties"], SPECIALTIES, "specialties")
        if "specialties" in rd
        else d.specialties,
        areas=tuple(_area(x) for x in rd["areas"]) if "areas" in rd else d.areas,
        patience_s=float(rd.get("patience_s", d.patience_s)),
    )
    behaviour = Behaviour(
        accept=float(rb.get("accept", b.accept)),
        accept_distance_km=float(rb.get("accept_distance_km", b.accept_distance_km)),
        fatigue_per_offer=float(rb.get("fatigue_per_offer", b.fatigue_per_offer)),
        ignore=float(rb.get("ignore", b.ignore)),
        response_s=_pair(rb["response_s"], "response_s") if "response_s" in rb else b.response_s,
        withdrawal=float(rb.get("withdrawal", b.withdrawal)),
        withdraw_after_s=_pair(rb["withdraw_after_s"], "withdraw_after_s")
        if "withdraw_after_s" in rb
        else b.withdraw_after_s,
    )
    travel = Travel(
        speed_kmh=float(rt.get("speed_kmh", t.speed_kmh)),
        road_factor=float(rt.get("road_factor", t.road_factor)),
    )
    scenario = Scenario(
        name=str(raw.get("name", "custom")),
        hours=float(raw.get("hours", base.hours)),
        artisans=artisans,
        demand=demand,
        behaviour=behaviour,
        travel=travel,
        work_minutes=_pair(raw["work_minutes"], "work_minutes")
        if "work_minutes" in raw
        else base.work_minutes,
        prices={**base.prices, **{str(k): float(v) for k, v in (raw.get("prices") or {}).items()}},
    )
    _check(scenario)
    return scenario


def _check(s: Scenario) -> None:
    if not 0 < s.hours <= 24 * 7:
        raise ScenarioError("hours must be in (0, 168]")
    if s.artisans.count < 0 or s.demand.jobs < 0:
        raise ScenarioError("artisans.count and demand.jobs must be >= 0")
    if len(s.demand.by_hour) != 24 or sum(s.demand.by_hour) <= 0:
        raise ScenarioError("demand.by_hour must hold 24 weights, not all zero")
    for p in (s.behaviour.accept, s.behaviour.ignore, s.behaviour.withdrawal):
        if not 0 <= p <= 1:
            raise ScenarioError("probabilities must be within [0, 1]")
    if s.travel.speed_kmh <= 0 or s.travel.road_factor < 1 or s.behaviour.accept_distance_km <= 0:
        raise ScenarioError("speed_kmh and accept_distance_km must be > 0, road_factor >= 1")
    if not s.artisans.shifts or not s.artisans.areas or not s.demand.areas:
        raise ScenarioError("shifts and areas must not be empty")
    for area in (*s.artisans.areas, *s.demand.areas):
        if not (-90 <= area.lat <= 90 and -180 <= area.lon <= 180 and area.radius_km > 0):
            raise ScenarioError(f"bad area {area}")


def load_scenario(spec: str) -> Scenario:
    """`builtin:NAME` or the path of a YAML file."""
    if spec.startswith("builtin:"):
        name = spec.removeprefix("builtin:")
        if name not in BUILTIN:
            raise ScenarioError(f"no built-in scenario {name!r}; there is {', '.join(BUILTIN)}")
        return BUILTIN[name]
    try:
        raw = yaml.safe_load(Path(spec).read_text())
    except OSError as exc:
        raise ScenarioError(f"cannot read {spec}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{spec} is not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ScenarioError(f"{spec}: a scenario is a mapping")
    try:
        return _build(raw)
    except ScenarioError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ScenarioError(f"{spec}: invalid scenario ({exc!r})") from exc
