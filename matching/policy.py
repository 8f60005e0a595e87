"""Ranking policy and the result type of :meth:`ArtisanIndex.query`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from matching.codes import LEVELS


class Candidate(NamedTuple):
    """One ranked artisan: ``score = distance_km - bonus``; lower is better."""

    artisan_id: str
    distance_km: float
    score: float


def _default_bonus() -> Mapping[str, float]:
    return {"STANDARD": 0.0, "PRO_PLUS": 0.5, "ELITE": 1.0}


@dataclass(frozen=True)
class RankingPolicy:
    """``score = distance_km - level_bonus_km[level] - rating_km_per_star * (rating - 4.0)``.

    Lower scores rank first; ties are broken by distance, then by artisan id.
    Any finite weights are accepted, including negative and very large ones:
    the index's search bound uses the largest bonus actually achievable, so
    results stay exact whatever the weights.
    """

    level_bonus_km: Mapping[str, float] = field(default_factory=_default_bonus)
    rating_km_per_star: float = 0.5

    def __post_init__(self) -> None:
        bonus = dict(self.level_bonus_km)
        unknown = set(bonus) - set(LEVELS)
        if unknown:
            raise ValueError(f"unknown level(s) in level_bonus_km: {sorted(unknown)}")
        missing = set(LEVELS) - set(bonus)
        if missing:
            raise ValueError(f"level_bonus_km is missing level(s): {sorted(missing)}")
        clean: dict[str, float] = {}
        for lvl in LEVELS:
            v = bonus[lvl]
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"level_bonus_km[{lvl!r}] must be a finite number, got {v!r}")
            clean[lvl] = float(v)
        rpm = self.rating_km_per_star
        if isinstance(rpm, bool) or not isinstance(rpm, int | float) or not math.isfinite(rpm):
            raise ValueError(f"rating_km_per_star must be a finite number, got {rpm!r}")
        object.__setattr__(self, "level_bonus_km", MappingProxyType(clean))
        object.__setattr__(self, "rating_km_per_star", float(rpm))

    @classmethod
    def distance_only(cls) -> RankingPolicy:
        """A policy with every weight zero: ``query`` becomes an exact k-NN search."""
        return cls(level_bonus_km=dict.fromkeys(LEVELS, 0.0), rating_km_per_star=0.0)

    def level_bonus_array(self) -> npt.NDArray[np.float64]:
        """Level bonuses indexed by level code."""
        return np.array([self.level_bonus_km[lvl] for lvl in LEVELS], dtype=np.float64)

    def score(self, distance_km: float, level: str, rating: float) -> float:
        """The contract formula, evaluated in the same order as the kernels."""
        return distance_km - self.level_bonus_km[level] - self.rating_km_per_star * (rating - 4.0)
