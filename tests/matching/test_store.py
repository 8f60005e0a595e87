"""The index's arrays: alignment, fill, huge-page mappings, and an index whose arrays
are large enough to live on them answering exactly."""

from __future__ import annotations

import numpy as np
import pytest

from matching import SPECIALTIES, ArtisanIndex, RankingPolicy
from matching.store import HUGE_PAGE, index_array
from tests.matching.matching_reference import assert_same, brute, paris_city


@pytest.mark.parametrize(
    ("shape", "dtype", "fill"),
    [
        ((256, 4), np.int64, -1),  # small: numpy's heap, 64-byte aligned
        (1000, np.int32, 0),
        ((200_000, 3), np.float64, 0.0),  # 4.6 MiB: its own mapping
        ((300_000, 2), np.int32, -1),
        ((100_000, 8), np.float32, None),
    ],
)
def test_index_array_alignment_and_fill(
    shape: int | tuple[int, int], dtype: type[np.generic], fill: float | None
) -> None:
    a = index_array(shape, dtype, fill)
    assert a.shape == (shape if isinstance(shape, tuple) else (shape,))
    assert a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
    align = HUGE_PAGE if a.nbytes >= HUGE_PAGE else 64
    assert a.ctypes.data % align == 0
    if fill is not None:
        assert (a == fill).all()
    elif a.nbytes >= HUGE_PAGE:
        assert not a.any()  # a fresh mapping reads as zeros
    a[-1] = 7  # the whole extent is writable
    assert (a[-1] == 7).all()


def test_index_on_large_arrays_is_exact() -> None:
    """100,000 artisans loaded from a small capacity: every growth goes through
    index_array's own mappings; answers still match the brute force."""
    recs = paris_city(100_000, 3)
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
    big = [a for a in store.arrays() if a.nbytes >= HUGE_PAGE]
    assert big and all(a.ctypes.data % HUGE_PAGE == 0 for a in big)
    rng = np.random.default_rng(4)
    for _ in range(12):
        qlat = 48.8566 + rng.normal(0, 0.1)
        qlon = 2.3522 + rng.normal(0, 0.15)
        spec = SPECIALTIES[int(rng.integers(0, 6))]
        assert_same(
            idx.query(qlat, qlon, spec), brute(recs, policy, qlat, qlon, spec, 15.0, set()), 10
        )
