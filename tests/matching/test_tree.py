"""The search tree: its counts and boxes under mutations, sparse data, the brute-force fallback."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from matching import SPECIALTIES, ArtisanIndex, RankingPolicy, store, walk
from matching import jit as _kj
from matching import kernels_tree as _kt
from matching.jit import BB_HI, BB_LO, BB_MAXB, LEAF_RES, M_ROOT, N_BASE
from matching.kernels_tree import RES_SHIFT
from tests.matching.matching_reference import Rec, assert_same, brute

KT: Any = _kt
KJ: Any = _kj


def _uuid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(int=int(rng.integers(0, 2**62)) << 64 | int(rng.integers(0, 2**62))))


def _load(idx: ArtisanIndex, recs: dict[str, Rec]) -> None:
    for a, r in recs.items():
        idx.upsert(a, r.lat, r.lon, r.specialty, r.level, r.rating, r.status)


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


def test_sparse_artisans_far_from_the_query() -> None:
    """Few artisans, far away: the search climbs to coarse nodes and stays exact."""
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
        qlat, qlon = -33.9 + float(rng.normal(0, 1.0)), 151.2 + float(rng.normal(0, 1.0))
        ref = brute(recs, idx.policy, qlat, qlon, "HEATING", 400.0, set())
        assert_same(idx.query(qlat, qlon, "HEATING", k=20, max_km=400.0), ref, 20)


def test_full_heap_falls_back_to_brute_force(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(walk, "HEAP_CAP", 2)
    monkeypatch.setattr(store, "HEAP_CAP", 2)
    rng = np.random.default_rng(4)
    recs = {
        _uuid(rng): Rec(
            48.85 + float(rng.normal(0, 0.05)), 2.35 + float(rng.normal(0, 0.07)),
            "LOCKSMITH", "STANDARD", float(rng.uniform(0, 5)), "ONLINE",
        )
        for _ in range(500)
    }  # fmt: skip
    idx = ArtisanIndex()
    _load(idx, recs)
    calls: list[int] = []
    real = walk.KQ.k_query_brute

    def counting(*args: object) -> object:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(walk, "KQ", SimpleNamespace(k_query_brute=counting))
    for _ in range(10):
        qlat, qlon = 48.85 + float(rng.normal(0, 0.05)), 2.35 + float(rng.normal(0, 0.07))
        ref = brute(recs, idx.policy, qlat, qlon, "LOCKSMITH", 15.0, set())
        assert_same(idx.query(qlat, qlon, "LOCKSMITH", k=10), ref, 10)
    assert calls


def _check_tree(idx: ArtisanIndex) -> None:
    """Every inner node counts the members below it and its box and bonus cover them;
    every leaf's block is in bonus band order, largest first, and its slots point back."""
    s = idx._s
    bt, bb = s.bt, s.bb
    keys = bt[:, 0]
    rows = {int(key): r for r, key in enumerate(keys.tolist()) if key >= 0}
    res = (keys >> RES_SHIFT) & 15
    counts: dict[int, int] = {}
    for r in np.flatnonzero((keys >= 0) & (res == LEAF_RES)).tolist():
        size = int(bt[r, 2])
        members = s.p_hot[bt[r, 1] : bt[r, 1] + size] if size else s.p_hot[:0]
        bands = [KJ.bonus_band(float(v)) for v in members[:, 3].tolist()]
        assert bands == sorted(bands), "block not in bonus band order"
        for p in range(int(bt[r, 1]), int(bt[r, 1]) + size):
            slot = int(s.p_i[p, 0])
            assert (int(s.m_i[slot, 0]), int(s.m_i[slot, 1])) == (r, p)
        for lvl in range(LEAF_RES - 1, -1, -1):
            pk = int(KT.parent_key(np.int64(keys[r]), lvl))
            assert pk in rows, (hex(int(keys[r])), lvl)
            p = rows[pk]
            counts[p] = counts.get(p, 0) + size
            if size:
                assert (bb[p, BB_LO : BB_LO + 3] <= members[:, :3].min(axis=0)).all()
                assert (bb[p, BB_HI : BB_HI + 3] >= members[:, :3].max(axis=0)).all()
                assert bb[p, BB_MAXB] >= members[:, 3].max()
    for p, c in counts.items():
        assert bt[p, 2] == c, (hex(int(keys[p])), int(bt[p, 2]), c)
    roots = s.meta[M_ROOT:].reshape(-1, N_BASE)
    assert roots.sum() == sum(idx.online_count(sp) for sp in SPECIALTIES)


def test_tree_counts_and_boxes_after_random_mutations() -> None:
    rng = np.random.default_rng(11)
    idx = ArtisanIndex(capacity=8)
    ids = [_uuid(rng) for _ in range(300)]
    for _ in range(3000):
        a = ids[int(rng.integers(0, len(ids)))]
        op = rng.random()
        if op < 0.1:
            idx.remove(a)
        elif op < 0.2 and a in idx:
            idx.set_status(a, str(rng.choice(["ONLINE", "BUSY", "OFFLINE"])))
        else:
            idx.upsert(
                a, 48.85 + float(rng.normal(0, 0.02)), 2.35 + float(rng.normal(0, 0.03)),
                SPECIALTIES[int(rng.integers(0, 2))], str(rng.choice(["STANDARD", "ELITE"])),
                float(rng.uniform(0, 5)),
                "ONLINE" if rng.random() < 0.8 else "BUSY",
            )  # fmt: skip
    _check_tree(idx)
    for a in ids[:150]:  # same place, new bonus: the entry moves inside its block
        r = idx.get(a)
        if r is not None:
            level = str(rng.choice(["STANDARD", "PRO_PLUS", "ELITE"]))
            idx.upsert(a, r.lat, r.lon, r.specialty, level, float(rng.uniform(0, 5)), r.status)
    _check_tree(idx)
    idx.compact()
    _check_tree(idx)
