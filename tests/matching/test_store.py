"""The index's arrays: alignment, fill, huge-page mappings, and an index whose arrays
are large enough to live on them answering exactly."""

from __future__ import annotations

import gc
import os

import numpy as np
import pytest

from matching import SPECIALTIES, ArtisanIndex, RankingPolicy
from matching.store import HUGE_PAGE, index_array, release_free_heap
from tests.matching.matching_reference import assert_same, brute, paris_city


@pytest.mark.parametrize("huge", [False, True])
@pytest.mark.parametrize(
    ("shape", "dtype", "fill"),
    [
        ((256, 4), np.int64, -1),  # under 2 MiB: numpy's heap either way
        (1000, np.int32, 0),
        ((200_000, 3), np.float64, 0),  # 4.6 MiB
        ((300_000, 2), np.int32, -1),
        (600_000, np.float32, 1.5),
    ],
)
def test_index_array_alignment_and_fill(
    shape: int | tuple[int, int], dtype: type[np.generic], fill: float, huge: bool
) -> None:
    a = index_array(shape, dtype, fill, huge=huge)
    assert a.shape == (shape if isinstance(shape, tuple) else (shape,))
    assert a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
    align = HUGE_PAGE if huge and a.nbytes >= HUGE_PAGE else 64
    assert a.ctypes.data % align == 0
    assert (a == fill).all()
    a[-1] = 7  # the whole extent is writable
    assert (a[-1] == 7).all() and (a[0] == fill).all()


def test_index_on_large_arrays_is_exact() -> None:
    """100,000 artisans loaded from a small capacity: the pool grows onto its own
    huge-page mappings; answers still match the brute force, also after moves."""
    recs = paris_city(100_000, 3)
    for r in recs.values():  # all in the pool: its distances, 2.7 MiB, on huge pages
        r.status = "ONLINE"
    ids = list(recs)
    policy = RankingPolicy()
    idx = ArtisanIndex(policy, capacity=16)
    cols = list(
        zip(
            *[(r.lat, r.lon, r.specialty, r.level, r.rating, r.status) for r in recs.values()],
            strict=True,
        )
    )
    idx.upsert_many(ids, *cols)
    store = idx._s
    assert store.p_f.nbytes >= HUGE_PAGE and store.p_f.ctypes.data % HUGE_PAGE == 0
    assert all(a.ctypes.data % 64 == 0 for a in store.arrays()[:10])
    rng = np.random.default_rng(4)

    def assert_exact(queries: int) -> None:
        for _ in range(queries):
            qlat = 48.8566 + rng.normal(0, 0.1)
            qlon = 2.3522 + rng.normal(0, 0.15)
            spec = SPECIALTIES[int(rng.integers(0, 6))]
            ref = brute(recs, policy, qlat, qlon, spec, 15.0, set())
            assert_same(idx.query(qlat, qlon, spec), ref, 10)

    assert_exact(12)
    for a in ids[:20_000]:  # moves: blocks change buckets, the pool grows and compacts
        r = recs[a]
        r.lat += float(rng.normal(0, 0.01))
        idx.upsert(a, r.lat, r.lon, r.specialty, r.level, r.rating, r.status)
    idx.compact()
    assert_exact(6)


def _resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_bulk_load_leaves_nothing_for_a_heap_trim() -> None:
    """A bulk load's temporaries (the id list, the code columns: ~11 B a row) are freed
    before the load returns the C heap's free pages to the system, so the process's
    resident memory after the load is the index's own: another trim frees nothing."""
    n = 300_000
    rng = np.random.default_rng(5)
    ids = [f"a{i:07d}" for i in range(n)]
    lat, lon = 48.85 + rng.normal(0, 0.08, n), 2.35 + rng.normal(0, 0.12, n)
    spec = np.array(SPECIALTIES)[rng.integers(0, len(SPECIALTIES), n)]
    level, status = np.full(n, "PRO_PLUS"), np.full(n, "ONLINE")
    rating = rng.uniform(0, 5, n)
    idx = ArtisanIndex(RankingPolicy())
    gc.collect()
    release_free_heap()  # what the test's own set-up freed
    idx.upsert_many(ids, lat, lon, spec, level, rating, status)
    gc.collect()
    loaded = _resident_bytes()
    release_free_heap()
    assert loaded - _resident_bytes() < n * 3  # 4.2 MB here before they were freed first
    assert idx.query(48.85, 2.35, spec[0], k=1)  # the index answers after the trim
