"""Plain-numpy brute force used as the oracle by the matching tests."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

import numpy as np

from matching import LEVELS, SPECIALTIES, STATUSES, Candidate, RankingPolicy

R = 6371.0088
D2R = math.pi / 180.0


@dataclass
class Rec:
    lat: float
    lon: float
    specialty: str
    level: str
    rating: float
    status: str


def haversine(qlat: float, qlon: float, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    p1 = qlat * D2R
    p2 = lat * D2R
    s1 = np.sin((p2 - p1) * 0.5)
    s2 = np.sin(((lon - qlon) * D2R) * 0.5)
    a = np.minimum(1.0, s1 * s1 + math.cos(p1) * np.cos(p2) * s2 * s2)
    return 2.0 * R * np.arcsin(np.sqrt(a))


def brute(
    recs: dict[str, Rec],
    policy: RankingPolicy,
    lat: float,
    lon: float,
    specialty: str,
    max_km: float,
    exclude: set[str],
) -> list[Candidate]:
    """Every eligible artisan, fully sorted by (score, distance, id)."""
    ids = [
        a
        for a, r in recs.items()
        if r.status == "ONLINE" and r.specialty == specialty and a not in exclude
    ]
    if not ids:
        return []
    la = np.array([recs[a].lat for a in ids])
    lo = np.array([recs[a].lon for a in ids])
    d = haversine(lat, lon, la, lo)
    out = []
    for a, dist in zip(ids, d.tolist(), strict=True):
        if dist <= max_km:
            r = recs[a]
            out.append(Candidate(a, dist, policy.score(dist, r.level, r.rating)))
    out.sort(key=lambda c: (c.score, c.distance_km, c.artisan_id))
    return out


def assert_same(got: list[Candidate], ref: list[Candidate], k: int, tol: float = 1e-9) -> None:
    """``got`` must be ``ref[:k]`` up to float tolerance (near-ties may swap)."""
    want = ref[:k]
    assert len(got) == len(want), (len(got), len(want), got, want)
    for g, w in zip(got, want, strict=True):
        assert abs(g.distance_km - w.distance_km) <= tol * max(1.0, w.distance_km), (g, w)
        assert abs(g.score - w.score) <= tol * max(1.0, abs(w.score)), (g, w)
    # ids: equal, except inside groups of (numerically) tied entries
    i = 0
    while i < len(want):
        j = i + 1
        while j < len(ref) and _tied(ref[j], ref[i], tol):
            j += 1
        group_ref = {c.artisan_id for c in ref[i:j]}
        group_got = {c.artisan_id for c in got[i : min(j, len(got))]}
        assert group_got <= group_ref, (i, got, want)
        if j <= len(want):
            assert group_got == group_ref, (i, got, want)
        i = j


def _tied(a: Candidate, b: Candidate, tol: float) -> bool:
    return abs(a.score - b.score) <= tol * max(1.0, abs(b.score)) and abs(
        a.distance_km - b.distance_km
    ) <= tol * max(1.0, b.distance_km)


def paris_city(n: int, seed: int) -> dict[str, Rec]:
    """``n`` artisans around Paris (sigma ~9 km), every specialty, level and status."""
    rng = np.random.default_rng(seed)
    lat = 48.8566 + rng.normal(0, 0.08, n)
    lon = 2.3522 + rng.normal(0, 0.12, n)
    spec = rng.integers(0, len(SPECIALTIES), n)
    lvl = rng.integers(0, 3, n)
    rating = np.round(rng.uniform(3.0, 5.0, n), 2)
    status = rng.choice(3, n, p=[0.3, 0.35, 0.35])
    return {
        str(uuid.UUID(int=int(rng.integers(0, 2**62)) << 66 | i)): Rec(
            float(lat[i]),
            float(lon[i]),
            SPECIALTIES[spec[i]],
            LEVELS[lvl[i]],
            float(rating[i]),
            STATUSES[status[i]],
        )
        for i in range(n)
    }
