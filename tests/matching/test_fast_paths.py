"""The kernels that take the caller's objects as they are (query, upsert) agree with
the general paths they fall back to, and build well-formed Python objects."""

from __future__ import annotations

import gc
import sys
import tracemalloc
import uuid

import numpy as np

from matching import ArtisanIndex, Candidate, RankingPolicy


def _index(n: int = 600, capacity: int = 16) -> tuple[ArtisanIndex, list[str]]:
    rng = np.random.default_rng(5)
    idx = ArtisanIndex(RankingPolicy(), capacity=capacity)
    ids = [str(uuid.UUID(int=int(v))) for v in rng.integers(0, 2**63, n)]
    for i, a in enumerate(ids):  # the single upsert only: its growth paths included
        idx.upsert(
            a, 48.85 + float(rng.normal(0, 0.02)), 2.35 + float(rng.normal(0, 0.03)),
            "PLUMBER", ("STANDARD", "PRO_PLUS", "ELITE")[i % 3], float(rng.uniform(0, 5)),
            "ONLINE" if i % 4 else "BUSY",
        )  # fmt: skip
    return idx, ids


def test_fast_upsert_grows_and_matches_get() -> None:
    idx, ids = _index()
    assert len(idx) == len(ids)
    rec = idx.get(ids[7])
    assert rec is not None and rec.status == "ONLINE" and rec.level == "PRO_PLUS"
    # the same artisan moved through the general path (numpy scalars) and back
    idx.upsert(ids[7], np.float64(48.86), np.float32(2.36), "PLUMBER", "ELITE", 5, "ONLINE")  # type: ignore[arg-type]
    assert idx.get(ids[7]) == (ids[7], 48.86, float(np.float32(2.36)), "PLUMBER", "ELITE", 5.0, "ONLINE")  # fmt: skip
    idx.upsert(ids[7], 48.87, 2.37, "PLUMBER", "ELITE", 4.0, "ONLINE")
    assert idx.get(ids[7]) == (ids[7], 48.87, 2.37, "PLUMBER", "ELITE", 4.0, "ONLINE")
    assert len(idx) == len(ids)


def test_non_canonical_uuid_is_another_artisan() -> None:
    idx, ids = _index(40)
    upper = ids[1].upper()
    idx.upsert(upper, 48.85, 2.35, "PLUMBER", "ELITE", 5.0, "ONLINE")
    assert len(idx) == 41
    assert idx.get(upper) is not None and idx.get(upper).artisan_id == upper  # type: ignore[union-attr]
    assert upper in [c.artisan_id for c in idx.query(48.85, 2.35, "PLUMBER", k=50)]


def test_fast_query_equals_general_path() -> None:
    idx, _ = _index()
    for lat, lon in ((48.85, 2.35), (48.87, 2.31), (48.80, 2.40)):
        fast = idx.query(lat, lon, "PLUMBER", k=10, max_km=15.0)
        general = idx.query(np.float64(lat), lon, "PLUMBER", k=10, max_km=15)  # validated path
        assert fast == general and len(fast) == 10
        for c in fast:
            assert type(c) is Candidate
            assert type(c.artisan_id) is str and uuid.UUID(c.artisan_id)
            assert type(c.distance_km) is float and type(c.score) is float
    assert idx.query(48.85, 2.35, "ELECTRICIAN") == []


def test_fast_query_objects_are_owned_once() -> None:
    idx, _ = _index(200)
    out = idx.query(48.85, 2.35, "PLUMBER", k=5)
    assert sys.getrefcount(out) == 2  # the name and getrefcount's argument
    assert gc.is_tracked(out)
    for c in out:
        assert sys.getrefcount(c) == 3  # the list, the loop name, the argument
        assert not gc.is_tracked(c)  # a str and two floats: no cycle to look for
    del out, c
    idx.query(48.85, 2.35, "PLUMBER", k=5)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(2000):
            idx.query(48.85, 2.35, "PLUMBER", k=5)
        leaked = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert leaked < 2000 * 50  # 2,000 answers of 5 candidates each (~600 B) freed


def test_untracked_candidates_survive_collections() -> None:
    """Kept answers stay whole through full collections (nothing the collector
    cannot see is freed under them) and cost the young generation nothing."""
    idx, _ = _index(300)
    gc.collect()
    young = len(gc.get_objects(0))
    kept = [idx.query(48.85, 2.35, "PLUMBER", k=10) for _ in range(500)]
    assert len(gc.get_objects(0)) - young <= 500 + 10  # the lists only
    gc.collect()
    assert all(answer == kept[0] and len(answer) == 10 for answer in kept)
    assert all(type(c) is Candidate and uuid.UUID(c.artisan_id) for c in kept[-1])
