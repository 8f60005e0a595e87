"""Zendo matching core: exact, numba-accelerated ranking of ONLINE artisans.

Public API (CONTRACT section 7)::

    from matching import ArtisanIndex, RankingPolicy, Candidate

No I/O, no aiohttp.  numba is required (ImportError otherwise).
"""

from __future__ import annotations

from matching.codes import LEVELS, SPECIALTIES, STATUSES
from matching.index import ArtisanIndex, ArtisanRecord
from matching.policy import Candidate, RankingPolicy

__all__ = [
    "LEVELS",
    "SPECIALTIES",
    "STATUSES",
    "ArtisanIndex",
    "ArtisanRecord",
    "Candidate",
    "RankingPolicy",
    "warmup",
]


def warmup() -> None:
    """Compile (or load from the on-disk cache) every numba kernel, and import what
    `assign` solves with (scipy.optimize).

    Call once at server start-up (e.g. in a thread) so that the first real
    query, upsert or assign does not pay for JIT compilation or an import.
    """
    import numpy as np

    idx = ArtisanIndex(RankingPolicy(), capacity=16)
    ids = [f"00000000-0000-4000-8000-{i:012x}" for i in range(40)] + ["warmup-side-id"]
    n = len(ids)
    rng = np.random.default_rng(0)
    lats = 48.85 + rng.normal(0.0, 0.01, n)
    lons = 2.35 + rng.normal(0.0, 0.01, n)
    idx.upsert_many(ids, lats, lons, ["PLUMBER"] * n, ["PRO_PLUS"] * n, [4.5] * n, ["ONLINE"] * n)
    for i in range(n):  # exercise growth paths of the single upsert
        idx.upsert(ids[i], float(lats[i]) + 0.01, float(lons[i]), "PLUMBER", "ELITE", 5.0, "ONLINE")
    idx.query(48.85, 2.35, "PLUMBER", k=3, max_km=5.0, exclude=[ids[0]])
    idx.query(48.85, 2.35, "PLUMBER", k=3, max_km=20000.0)  # brute-force path
    idx.query(48.85, 2.35, "PLUMBER", k=50, max_km=200.0)
    idx.set_status(ids[1], "BUSY")
    idx.remove(ids[2])
    idx.remove("warmup-side-id")
    idx.compact()
    idx.naive_scan(48.85, 2.35, "PLUMBER", k=3)
    # "a" and "b" compete for the same artisans: their component is solved by scipy, whose
    # import (0.3-1 s) would otherwise stall the first real `assign` on the event loop.
    spots = (("a", 48.85), ("b", 48.85), ("c", 48.86))
    idx.assign([(job, lat, 2.35, "PLUMBER") for job, lat in spots], k=3)
