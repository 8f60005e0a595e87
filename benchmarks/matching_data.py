"""The matching benchmark's data, queries and reference answers (benchmarks.bench_matching).

Artisans around Paris (Gaussian, sigma 9 km both ways), 30 % ONLINE, six specialties,
levels uniform, ratings uniform in [0, 5], 0.5 % sharing another artisan's exact
position; queries spread like them, 10 % exactly on an ONLINE artisan; answers checked
against a numpy brute force in CONTRACT section 7's order.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import numpy as np

from matching import LEVELS, SPECIALTIES, Candidate, RankingPolicy

STATUSES3 = np.array(["ONLINE", "BUSY", "OFFLINE"])
PARIS = (48.8566, 2.3522)
SIGMA_LAT = 0.081  # 9 km
SIGMA_LON = 0.123  # 9 km at Paris' latitude
K, MAX_KM = 10, 15.0
R_KM = 6371.0088
D2R = math.pi / 180.0
Query = tuple[float, float, str]


def pct(values: list[float], scale: float = 1e6) -> str:
    a = np.array(values) * scale
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return f"p50 {p50:7.1f}  p90 {p90:7.1f}  p99 {p99:7.1f}"


def make_data(n: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 2**63, (n, 2))
    lat = PARIS[0] + rng.normal(0, SIGMA_LAT, n)
    lon = PARIS[1] + rng.normal(0, SIGMA_LON, n)
    dup = np.flatnonzero(rng.random(n) < 0.005)
    src = rng.integers(0, n, dup.size)
    lat[dup], lon[dup] = lat[src], lon[src]
    return {
        "ids": [str(uuid.UUID(int=(int(a) << 64) | int(b))) for a, b in raw.tolist()],
        "lat": lat,
        "lon": lon,
        "spec": np.array(SPECIALTIES)[rng.integers(0, 6, n)],
        "level": np.array(LEVELS)[rng.integers(0, 3, n)],
        "rating": rng.uniform(0.0, 5.0, n),
        "status": STATUSES3[rng.choice(3, n, p=[0.3, 0.35, 0.35])],
    }


def make_queries(d: dict[str, Any], count: int, seed: int) -> list[Query]:
    rng = np.random.default_rng(seed)
    online = np.flatnonzero(d["status"] == "ONLINE")
    out: list[Query] = []
    for _ in range(count):
        if rng.random() < 0.1:
            i = int(online[rng.integers(0, online.size)])
            out.append((float(d["lat"][i]), float(d["lon"][i]), str(d["spec"][i])))
        else:
            out.append(
                (
                    PARIS[0] + float(rng.normal(0, SIGMA_LAT)),
                    PARIS[1] + float(rng.normal(0, SIGMA_LON)),
                    SPECIALTIES[int(rng.integers(0, 6))],
                )
            )
    return out


class Oracle:
    """Numpy brute force over the ONLINE artisans (CONTRACT section 7 order)."""

    def __init__(self, d: dict[str, Any], policy: RankingPolicy) -> None:
        self.d = d
        names, lvl = np.unique(d["level"], return_inverse=True)
        level_bonus = np.array([policy.level_bonus_km[str(v)] for v in names])[lvl]
        self.bonus = level_bonus + policy.rating_km_per_star * (d["rating"] - 4.0)
        self.rows = {
            s: np.flatnonzero((d["spec"] == s) & (d["status"] == "ONLINE")) for s in SPECIALTIES
        }

    def top(self, q: Query) -> list[Candidate]:
        rows = self.rows[q[2]]
        la = self.d["lat"][rows] * D2R
        s1 = np.sin((la - q[0] * D2R) * 0.5)
        s2 = np.sin(((self.d["lon"][rows] - q[1]) * D2R) * 0.5)
        a = np.minimum(1.0, s1 * s1 + math.cos(q[0] * D2R) * np.cos(la) * s2 * s2)
        dist = 2.0 * R_KM * np.arcsin(np.sqrt(a))
        score = dist - self.bonus[rows]
        ok = np.flatnonzero(dist <= MAX_KM)
        if ok.size > 4 * K:
            cut = np.partition(score[ok], K)[K] + 1e-6
            ok = ok[score[ok] <= cut]
        cands = [Candidate(self.d["ids"][rows[i]], float(dist[i]), float(score[i])) for i in ok]
        cands.sort(key=lambda c: (c.score, c.distance_km, c.artisan_id))
        return cands


def same(got: list[Candidate], ref: list[Candidate], tol: float = 1e-9) -> bool:
    """``got`` is ``ref[:K]`` up to float rounding (ids may swap only inside exact ties)."""
    want = ref[:K]
    if len(got) != len(want):
        return False
    for g, w in zip(got, want, strict=True):
        if abs(g.score - w.score) > tol * max(1.0, abs(w.score)):
            return False
        if g.artisan_id != w.artisan_id:
            tied = {
                c.artisan_id
                for c in ref
                if abs(c.score - w.score) <= tol and abs(c.distance_km - w.distance_km) <= tol
            }
            if g.artisan_id not in tied:
                return False
    return True
