"""The ring-distance lower bound and ring ordering hold where H3 is awkward."""

from __future__ import annotations

import h3
import numpy as np
import pytest
from h3.api import basic_int as hb
from h3.api import numpy_int as hn

from matching.geometry import H3_RES, PENTAGON_EXCLUSION_KM, ring_lower_bounds

R = 6371.0088


def _xyz(ll: tuple[tuple[float, float], ...]) -> np.ndarray:
    a = np.radians(np.asarray(ll))
    la, lo = a[:, 0], a[:, 1]
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], -1)


def _poly_dist(p: np.ndarray, q: np.ndarray) -> float:
    """Min distance (km, chord metric <= arc) between two polygon boundaries."""

    def vert_to_segs(v: np.ndarray, w: np.ndarray) -> float:
        a, b = w, np.roll(w, -1, 0)
        ab = b - a
        ap = v[:, None, :] - a[None]
        t = np.clip((ap * ab[None]).sum(-1) / (ab * ab).sum(-1)[None], 0, 1)
        d = ap - t[..., None] * ab[None]
        return float(np.sqrt((d * d).sum(-1)).min())

    return R * min(vert_to_segs(p, q), vert_to_segs(q, p))


ORIGINS = [
    (89.99, 0.0),
    (-89.99, 45.0),
    (88.0, 120.0),
    (0.0, 180.0),
    (0.0, -179.999),
    (65.5, 179.9),
    (-45.0, -179.95),
    (48.8566, 2.3522),
    (-33.9, 151.2),
    (35.7, 139.7),
]


@pytest.mark.parametrize("origin", ORIGINS)
def test_ring_bound_is_conservative(origin: tuple[float, float]) -> None:
    lb = ring_lower_bounds()
    o = hb.latlng_to_cell(origin[0], origin[1], H3_RES)
    po = _xyz(hb.cell_to_boundary(o))
    for m in range(2, 7):
        d = min(_poly_dist(po, _xyz(hb.cell_to_boundary(c))) for c in hb.grid_ring(o, m))
        assert lb[m] <= d, (origin, m, lb[m], d)


def test_ring_bound_random_places() -> None:
    rng = np.random.default_rng(7)
    lb = ring_lower_bounds()
    pent = _xyz(tuple(h3.cell_to_latlng(p) for p in h3.get_pentagons(H3_RES)))
    checked = 0
    while checked < 40:
        lat = float(np.degrees(np.arcsin(rng.uniform(-1, 1))))
        lon = float(rng.uniform(-180, 180))
        q = _xyz(((lat, lon),))
        if (np.linalg.norm(pent - q, axis=1) * R).min() < PENTAGON_EXCLUSION_KM:
            continue
        o = hb.latlng_to_cell(lat, lon, H3_RES)
        po = _xyz(hb.cell_to_boundary(o))
        for m in (2, 3, 8):
            d = min(_poly_dist(po, _xyz(hb.cell_to_boundary(c))) for c in hb.grid_ring(o, m))
            assert lb[m] <= d, (lat, lon, m, lb[m], d)
        checked += 1


@pytest.mark.parametrize("origin", ORIGINS)
def test_grid_disk_is_ring_ordered_away_from_pentagons(origin: tuple[float, float]) -> None:
    o = hb.latlng_to_cell(origin[0], origin[1], H3_RES)
    kk = 12
    disk = hn.grid_disk(o, kk)
    assert len(disk) == 3 * kk * (kk + 1) + 1
    for r in range(kk + 1):
        i0 = 0 if r == 0 else 3 * r * (r - 1) + 1
        i1 = 3 * r * (r + 1) + 1
        assert {int(c) for c in disk[i0:i1]} == set(hb.grid_ring(o, r)), r
