"""The general query path: exclusions, large k, non-UUID ids, brute-force fallback.

The common query (no exclusions, ``k <= FAST_K_MAX``) does not come here:
:meth:`matching.ArtisanIndex.query` calls :func:`matching.kernels_query.k_query_fast`
directly.  Here the Python side passes its buffers; the kernel returns plain ints
and writes ids as ``,``-separated text, so building the result is a
``bytes.decode``/``str.split`` and a C-level ``map`` of ``tuple.__new__``.
"""

from __future__ import annotations

from itertools import repeat
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from matching import kernels_query as _kq
from matching.jit import (
    FLAG_NEED_SORT,
    FLAG_SIDE_IDS,
    HEAP_CAP,
    ID_STRIDE,
    M_CNT,
    Q_DONE,
    Q_OVERFLOW,
    TIE_ROOM,
)
from matching.policy import Candidate
from matching.store import Store

KQ: Any = _kq  # numba dispatchers are opaque to mypy
EMPTY_EXCL: Final = np.zeros(0, dtype=np.int64)
__all__ = ["EMPTY_EXCL", "HEAP_CAP", "TIE_ROOM", "Buffers", "results", "run"]
_new_tuple = tuple.__new__


class Buffers:
    """Per-query output buffers and the search heap (reused across queries by one index)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.o_f = np.empty((2, cap), dtype=np.float64)  # score, distance
        self.o_i = np.empty((2, cap), dtype=np.int64)  # slot, side key
        self.o_hex = np.empty((cap, ID_STRIDE), dtype=np.uint8)  # "uuid," text
        self.hk = np.empty(HEAP_CAP, dtype=np.float64)  # heap: score lower bound
        self.hv = np.empty(HEAP_CAP, dtype=np.int64)  # heap: node row


def run(
    store: Store,
    bufs: Buffers,
    side_str: dict[int, str],
    lat: float,
    lon: float,
    max_km: float,
    sp: int,
    k: int,
    excl: npt.NDArray[np.int64],
) -> tuple[list[Candidate], Buffers]:
    """Run one query; returns the ranked candidates and the buffers to keep."""
    o_f, o_i, o_hex = bufs.o_f, bufs.o_i, bufs.o_hex
    code, count, flags = store.k_query_tree(
        store.state, excl, o_f, o_i, o_hex, bufs.hk, bufs.hv, lat, lon, max_km, sp, k
    )
    if code != Q_DONE:
        if code == Q_OVERFLOW:  # more exact ties than the buffer holds: size it for all
            bufs = Buffers(k + int(store.meta[M_CNT + sp]))
            o_f, o_i, o_hex = bufs.o_f, bufs.o_i, bufs.o_hex
        code, count, flags = KQ.k_query_brute(
            store.bt, store.bb, store.p_hot, store.p_f, store.p_i, store.m_id, store.m_b,
            store.fmeta,
            excl, o_f, o_i, o_hex, lat, lon, max_km, sp, k,
        )  # fmt: skip
        if code != Q_DONE:  # pragma: no cover - buffer sized to hold everything
            raise RuntimeError("matching: brute-force buffer overflow")
    return results(o_f, o_i, o_hex, count, flags, k, side_str), bufs


def results(
    o_f: npt.NDArray[np.float64], o_i: npt.NDArray[np.int64], o_hex: npt.NDArray[np.uint8],
    count: int, flags: int, k: int, side_str: dict[int, str],
) -> list[Candidate]:  # fmt: skip
    """The candidates a kernel wrote into one query's buffers."""
    if count == 0:
        return []
    m = count if flags & FLAG_NEED_SORT else min(count, k)
    ids = o_hex[:m].tobytes().decode("ascii").split(",")
    ids.pop()  # the text ends with a separator
    if flags & FLAG_SIDE_IDS:
        for i, key in enumerate(o_i[1, :m].tolist()):
            if key >= 0:
                ids[i] = side_str[key]
    scores, dists = o_f[:, :m].tolist()
    out: list[Candidate] = list(
        map(_new_tuple, repeat(Candidate, m), zip(ids, dists, scores, strict=True))
    )
    if flags & FLAG_NEED_SORT:
        out.sort(key=lambda c: (c.score, c.distance_km, c.artisan_id))
        del out[k:]
    return out
