"""H3 resolution and the ring-distance lower bound used to stop the ring walk.

Resolution
----------
The index buckets ONLINE artisans by (specialty, H3 cell) at resolution 8
(average hexagon edge ~0.53 km, area ~0.74 km^2).  In the dense Paris
benchmark (50k ONLINE artisans per specialty, sigma ~9 km) a res-8 cell holds
~70 eligible artisans near the centre; a k=10 query under the default policy
(max bonus 1.5 km) stops after 2-3 rings (7-37 cells), and the per-candidate
work is a 5-flop float32 prefilter.  Measured on the benchmark: res 9 needs
~100 cells per query and was slower (p50 ~30 us vs ~25 us) because each cell
costs a hash probe plus a cache miss on its pool block; res 7 would make the
last ring scanned far larger than needed.  Both res 8 and res 9 bound tables
are kept (``ring_lower_bounds(res=...)``).

Ring bound
----------
Let ``o`` be the cell containing the query point ``q`` and ``C`` a cell at
grid distance ``m >= 2`` from ``o``.  Every point of ``C`` is at least
``ring_lower_bound_km(m)`` from every point of ``o`` (hence from ``q``).
Any continuous path from ``q`` to a cell at distance > m crosses ring m
(adjacent cells differ by at most 1 in grid distance), so the bound also
holds for every cell farther than ``m``.

H3 cells are not uniform, so the bound is a per-``m`` table calibrated
offline over 3,000 random origins spread uniformly over the sphere
(including high latitudes and the antimeridian, origins within 80 km of a
pentagon excluded) by computing the exact minimum polygon-to-polygon distance
between ``o`` and each cell of ring ``m`` (vertex/segment distances), taking
the worst ratio ``dist / (m - 1)`` observed (suffix-minimum over ``m``), and
multiplying it by a safety factor of 0.85.  ``tests/matching`` re-checks the
bound at the poles, the antimeridian and random places.

Pentagons distort the grid (and make ``grid_disk`` return unordered cells),
so queries within ``PENTAGON_EXCLUSION_KM`` of any resolution-``H3_RES`` pentagon
centre use the exact brute-force kernel instead of the ring walk; so do
queries whose ring walk would need more than ``MAX_RINGS`` rings or more
cells than the specialty has ONLINE artisans (large ``max_km``, huge policy
weights, sparse regions).
"""

from __future__ import annotations

from typing import Final

import h3
import numpy as np
import numpy.typing as npt

from matching.codes import EARTH_RADIUS_KM

H3_RES: Final = 8

#: Worst observed min-distance / (m - 1) ratio (km), m = 2, 3, ..., per resolution.
_CALIBRATED_KM_PER_RING: Final[dict[int, tuple[float, ...]]] = {
    8: (
        0.401, 0.503, 0.535, 0.542, 0.554, 0.560, 0.563, 0.568, 0.570, 0.571,
        0.574, 0.575, 0.576, 0.577, 0.578,
    ),
    9: (
        0.145, 0.191, 0.193, 0.200, 0.203, 0.205, 0.207, 0.208, 0.209, 0.209,
        0.210, 0.211, 0.211, 0.211, 0.212, 0.212, 0.212, 0.213, 0.213, 0.213,
        0.213, 0.213, 0.213,
    ),
}  # fmt: skip
SAFETY: Final = 0.85
MAX_RINGS: Final = 128
PENTAGON_EXCLUSION_KM: Final = 150.0


def ring_lower_bounds(max_rings: int = MAX_RINGS, res: int = H3_RES) -> npt.NDArray[np.float64]:
    """``lb[m]`` = lower bound (km) of the distance from the query to ring ``m`` or beyond."""
    lb = np.zeros(max_rings + 2, dtype=np.float64)
    ratios = np.minimum.accumulate(np.array(_CALIBRATED_KM_PER_RING[res])[::-1])[::-1]
    for m in range(2, max_rings + 2):
        ratio = ratios[min(m - 2, len(ratios) - 1)]
        lb[m] = SAFETY * ratio * (m - 1)
    return lb


def pentagon_unit_vectors() -> npt.NDArray[np.float64]:
    """Unit vectors of the resolution-``H3_RES`` pentagon centres, shape (12, 3)."""
    out = np.empty((12, 3), dtype=np.float64)
    for i, p in enumerate(h3.get_pentagons(H3_RES)):
        lat, lon = h3.cell_to_latlng(p)
        la, lo = np.radians(lat), np.radians(lon)
        out[i] = (np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la))
    return out


def pentagon_chord_threshold(extra_km: float = 0.0) -> float:
    """Chord length (unit sphere) equivalent to ``PENTAGON_EXCLUSION_KM + extra_km``."""
    return float(2.0 * np.sin((PENTAGON_EXCLUSION_KM + extra_km) / (2.0 * EARTH_RADIUS_KM)))
