"""The query path's caches and pruning: disk cache eviction, bucket boxes, escalation."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from matching import ArtisanIndex, RankingPolicy, walk
from tests.matching.matching_reference import Rec, assert_same, brute


def _uuid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(int=int(rng.integers(0, 2**62)) << 64 | int(rng.integers(0, 2**62))))


def _load(idx: ArtisanIndex, recs: dict[str, Rec]) -> None:
    for a, r in recs.items():
        idx.upsert(a, r.lat, r.lon, r.specialty, r.level, r.rating, r.status)


def test_disk_cache_eviction_keeps_results_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(walk, "DISK_CACHE_MAX", 4)
    rng = np.random.default_rng(3)
    recs = {
        _uuid(rng): Rec(
            45.0 + float(rng.normal(0, 0.05)), 5.0 + float(rng.normal(0, 0.07)),
            "PLUMBER", "PRO_PLUS", float(rng.uniform(3, 5)), "ONLINE",
        )
        for _ in range(3000)
    }  # fmt: skip
    idx = ArtisanIndex()
    _load(idx, recs)
    for _ in range(60):
        qlat, qlon = 45.0 + float(rng.normal(0, 0.05)), 5.0 + float(rng.normal(0, 0.07))
        ref = brute(recs, idx.policy, qlat, qlon, "PLUMBER", 15.0, set())
        assert_same(idx.query(qlat, qlon, "PLUMBER", k=10), ref, 10)
    assert 0 < len(idx._disks) <= 4


def test_bucket_boxes_follow_moves_and_emptied_buckets() -> None:
    """Boxes only grow while a bucket is non-empty and reset when it empties."""
    rng = np.random.default_rng(5)
    policy = RankingPolicy.distance_only()
    idx = ArtisanIndex(policy)
    recs: dict[str, Rec] = {}
    ids = [_uuid(rng) for _ in range(400)]
    for step in range(6):
        for a in ids:  # the whole crowd moves ~1 km, emptying old cells, filling new ones
            r = Rec(
                10.0 + 0.01 * step + float(rng.normal(0, 0.004)),
                20.0 + float(rng.normal(0, 0.004)),
                "GLAZIER", "STANDARD", 4.0, "ONLINE" if rng.random() < 0.9 else "BUSY",
            )  # fmt: skip
            recs[a] = r
            idx.upsert(a, r.lat, r.lon, r.specialty, r.level, r.rating, r.status)
        for _ in range(10):
            qlat = 10.0 + 0.01 * float(rng.uniform(-1, 7))
            qlon = 20.0 + float(rng.normal(0, 0.01))
            ref = brute(recs, policy, qlat, qlon, "GLAZIER", 15.0, set())
            assert_same(idx.query(qlat, qlon, "GLAZIER", k=5, max_km=15.0), ref, 5)
    idx.compact()
    ref = brute(recs, policy, 10.03, 20.0, "GLAZIER", 15.0, set())
    assert_same(idx.query(10.03, 20.0, "GLAZIER", k=5, max_km=15.0), ref, 5)


def test_sparse_artisans_need_wider_rings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sparse artisans: the walk escalates past the cached disk (larger grid_disk calls)."""
    calls: list[int] = []
    real_disk = walk._grid_disk

    def counting_disk(cell: int, rings: int) -> np.ndarray:
        calls.append(rings)
        return real_disk(cell, rings)

    monkeypatch.setattr(walk, "_grid_disk", counting_disk)
    rng = np.random.default_rng(9)
    recs = {
        _uuid(rng): Rec(
            -33.9 + float(rng.normal(0, 0.3)), 151.2 + float(rng.normal(0, 0.3)),
            "HEATING", "ELITE", float(rng.uniform(0, 5)), "ONLINE",
        )
        for _ in range(2000)
    }  # fmt: skip
    idx = ArtisanIndex()
    _load(idx, recs)
    for _ in range(20):
        qlat, qlon = -33.9 + float(rng.normal(0, 0.1)), 151.2 + float(rng.normal(0, 0.1))
        ref = brute(recs, idx.policy, qlat, qlon, "HEATING", 40.0, set())
        assert_same(idx.query(qlat, qlon, "HEATING", k=20, max_km=40.0), ref, 20)
    assert any(r > walk.FIRST_RINGS for r in calls), calls
