"""The query path: H3 disk cache, the ring-walk driver and cheap result building.

Per query the Python side does one ``latlng_to_cell``, one dict lookup for the
cell's cached disk and (normally) one kernel call; the kernel returns plain
ints and writes ids as ``,``-separated text, so building the result is a
``bytes.decode``/``str.split`` and a C-level ``map`` of ``tuple.__new__``.
"""

from __future__ import annotations

from itertools import repeat
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from h3.api import basic_int as _h3
from h3.api import numpy_int as _h3np

from matching import kernels_query as _kq
from matching.geometry import (
    MAX_RINGS,
    pentagon_chord_threshold,
    pentagon_unit_vectors,
    ring_lower_bounds,
)
from matching.jit import FLAG_NEED_SORT, FLAG_SIDE_IDS, ID_STRIDE, M_CNT, Q_DONE, Q_MORE, Q_OVERFLOW
from matching.policy import Candidate
from matching.store import Store

KQ: Any = _kq  # numba dispatchers are opaque to mypy
latlng_to_cell: Final = _h3.latlng_to_cell
_grid_disk = _h3np.grid_disk
_h3_cell_to_latlng = _h3.cell_to_latlng

RING_LB: Final = ring_lower_bounds()
_PENT: Final = pentagon_unit_vectors()
#: cell centres closer than this chord to a pentagon use brute force: the query
#: exclusion radius plus 2 km (> any res-8 cell radius) so every point of the cell is covered
_PENT_CHORD: Final = pentagon_chord_threshold(extra_km=2.0)
EMPTY_EXCL: Final = np.zeros(0, dtype=np.int64)
#: cached for cells near a pentagon: those queries use the brute-force kernel
_NO_DISK: Final = np.zeros(0, dtype=np.uint64)
#: radius of the cached first disk (19 cells); Paris k=10 queries stop there
FIRST_RINGS: Final = 2
#: cost of one disk cell relative to one brute-force candidate (used to pick brute force)
_CELL_COST: Final = 8
#: extra room in the result buffer for exact (score, distance) ties
TIE_ROOM: Final = 32
#: the disk cache is dropped when it reaches this many cells (~6 MB)
DISK_CACHE_MAX: Final = 1 << 14
_new_tuple = tuple.__new__


class Buffers:
    """Per-query output buffers (reused across queries by one index)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.o_f = np.empty((2, cap), dtype=np.float64)  # score, distance
        self.o_i = np.empty((2, cap), dtype=np.int64)  # slot, side key
        self.o_hex = np.empty((cap, ID_STRIDE), dtype=np.uint8)  # "uuid," text


def first_disk(cell: int) -> npt.NDArray[np.uint64]:
    """The ring-ordered radius-``FIRST_RINGS`` disk of ``cell``; empty near a pentagon."""
    lat, lon = _h3_cell_to_latlng(cell)
    la, lo = np.radians(lat), np.radians(lon)
    q = np.array([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])
    if float(np.min(np.sum((_PENT - q) ** 2, axis=1))) < _PENT_CHORD * _PENT_CHORD:
        return _NO_DISK
    disk: npt.NDArray[np.uint64] = _grid_disk(cell, FIRST_RINGS)
    if disk.shape[0] != 3 * FIRST_RINGS * (FIRST_RINGS + 1) + 1:  # pragma: no cover
        return _NO_DISK  # grid distortion: only possible next to a pentagon
    return disk


def run(
    store: Store,
    bufs: Buffers,
    side_str: dict[int, str],
    cell: int,
    disk: npt.NDArray[np.uint64],
    lat: float,
    lon: float,
    max_km: float,
    sp: int,
    k: int,
    excl: npt.NDArray[np.int64],
) -> tuple[list[Candidate], Buffers]:
    """Run one query; returns the ranked candidates and the buffers to keep."""
    state = store.state
    o_f, o_i, o_hex = bufs.o_f, bufs.o_i, bufs.o_hex
    code = Q_OVERFLOW + 1  # brute force unless the walk answers
    if disk.shape[0]:
        rings = FIRST_RINGS
        code, count, seen, flags = store.k_query_rings(
            state, disk, RING_LB, excl, o_f, o_i, o_hex, lat, lon, max_km, sp, k, 0, rings, 0, 0
        )
        while code == Q_MORE:
            r_from = rings + 1
            rings *= 2
            total = int(store.meta[M_CNT + sp])
            if rings > MAX_RINGS or 3 * rings * (rings + 1) * _CELL_COST > total:
                code = Q_OVERFLOW + 1
                break
            disk = _grid_disk(cell, rings)
            if disk.shape[0] != 3 * rings * (rings + 1) + 1:  # pragma: no cover
                code = Q_OVERFLOW + 1
                break
            code, count, seen, flags = store.k_query_rings(
                state, disk, RING_LB, excl, o_f, o_i, o_hex,
                lat, lon, max_km, sp, k, r_from, rings, count, seen,
            )  # fmt: skip
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
    if count == 0:
        return [], bufs
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
    return out, bufs
