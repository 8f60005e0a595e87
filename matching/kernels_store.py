# numba kernels mix Python ints with numpy scalars (np.int64/np.uint64 steer numba's
# typing); mypy cannot model that, so these codes are relaxed here only.
# mypy: disable-error-code="return-value,no-any-return,assignment,arg-type"
"""Mutation kernels: bucket table, pooled bucket blocks, upsert / remove / compact.

Layout (owned by :class:`matching.store.Store`):

* per artisan slot: ``m_f`` (lat, lon, rating) f64, ``m_id`` (hi, lo) i64,
  ``m_i`` (bucket row, pool position) i32, ``m_b`` (specialty, level, status, id kind) i8;
* ``htab``: id -> slot (see :mod:`matching.kernels_ids`);
* ``bt``: (specialty, cell) bucket hash table, rows (key, block start, size, size class);
  ``bb``: per bucket row, the float32 bounding box (min xyz, max xyz) of its members'
  unit vectors and their largest bonus, in the second half of the row's own 64-byte
  line (see :mod:`matching.kernels_tree`);
* pool, one entry per ONLINE artisan, in power-of-two blocks per bucket, each block
  ordered by bonus band, largest first (:func:`matching.jit.bonus_band`; a query's scan
  of a block stops at its bound; a move costs one entry move per band, not per entry):
  ``p_hot`` (x, y, z, bonus rounded up) f32 -- the only data the prefilter touches --,
  ``p_f`` (lat, lon, rating term) f64 and ``p_i`` (slot, level) i32.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from matching.codes import RATING_MAX, RATING_MIN
from matching.jit import (
    D_BB,
    D_BT,
    D_FMETA,
    D_HTAB,
    D_LEVELS,
    D_MB,
    D_META,
    D_MF,
    D_MI,
    D_MID,
    D_PF,
    D_PHOT,
    D_PI,
    D_SPECS,
    D_STATUSES,
    DEG2RAD,
    F32,
    F32_BIG,
    F64,
    F_MAXB,
    F_RPM,
    I8,
    I32,
    I64,
    M_CNT,
    M_N,
    M_NBUCKETS,
    NEED_BUCKETS,
    NEED_MAIN,
    NEED_POOL,
    NODE_COLS,
    OK,
    SPEC_SHIFT,
    U64,
    UP_SLOW,
    arr1,
    arr2,
    as_voidptr,
    bonus_band,
    desc_view,
    jit,
    prefetch,
)
from matching.kernels_ids import id_delete_at, id_find, id_home, uuid_words
from matching.kernels_pool import (
    alloc,
    block_insert,
    block_remove,
    can_alloc,
    free_block,
    pool_copy,
)
from matching.kernels_tree import (
    box_add,
    box_reset,
    bucket_find,
    is_leaf,
    prefetch_path,
    tree_add,
    tree_grow,
    tree_rows_needed,
)
from matching.pyobj import py_as_float, py_dict_int, py_str_utf8

_carray: Any = getattr(numba, "carray")  # noqa: B009 - not re-exported

# --------------------------------------------------------------------------- buckets


@jit
def k_rehash_buckets(new_bt: I64, old_bt: I64, p_i: I32, m_i: I32) -> None:
    """Move every row of the node table ``old_bt`` (its ``bb`` included: the same
    lines) into ``new_bt`` and re-point the artisans."""
    new_bt[:, 0] = -1
    for r in range(old_bt.shape[0]):
        key = old_bt[r, 0]
        if key < 0:
            continue
        _, pos = bucket_find(new_bt, key)
        for c in range(NODE_COLS):
            new_bt[pos, c] = old_bt[r, c]
        if not is_leaf(key):
            continue
        start = old_bt[r, 1]
        for j in range(start, start + old_bt[r, 2]):
            m_i[p_i[j, 0], 0] = pos


@jit
def _bucket_add(
    b: int, slot: int, bt: I64, m_i: I32, meta: I64, p_hot: F32, p_f: F64, p_i: I32
) -> int:
    start = int(bt[b, 1])
    size = int(bt[b, 2])
    cls = int(bt[b, 3])
    cap = 0 if cls < 0 else 1 << cls
    if size == cap:
        ncls = cls + 1
        ns = alloc(ncls, meta, p_i)
        for j in range(size):
            pool_copy(start + j, ns + j, p_hot, p_f, p_i)
            m_i[p_i[ns + j, 0], 1] = ns + j
        if cls >= 0:
            free_block(start, cls, meta, p_i)
        start = ns
        bt[b, 1] = ns
        bt[b, 3] = ncls
    pos = start + size
    bt[b, 2] = size + 1
    p_i[pos, 0] = slot
    return pos


@jit
def _bucket_remove(
    b: int, pos: int, bt: I64, bb: F32, m_i: I32, meta: I64, p_hot: F32, p_f: F64, p_i: I32
) -> None:
    start = int(bt[b, 1])
    size = int(bt[b, 2])
    last = start + size - 1
    block_remove(b, pos, bt, m_i, p_hot, p_f, p_i)
    box_reset(bb, b)
    if size == 1:
        free_block(start, int(bt[b, 3]), meta, p_i)
        bt[b, 1] = -1
        bt[b, 3] = -1
    else:  # tight again: the box and bonus of the members left (one contiguous block)
        for p in range(start, last):
            box_add(bb, b, p, p_hot)


# --------------------------------------------------------------------------- mutation


@jit
def _bonus_hi(bonus: float) -> np.float32:
    """A float32 >= ``bonus`` (so that the float32 prefilter never over-prunes)."""
    if bonus > F32_BIG:
        return np.float32(np.inf)
    if bonus < -F32_BIG:
        return np.float32(-F32_BIG)
    # float32 rounding is within 2**-24 relative: this margin always rounds up
    return np.float32(bonus + abs(bonus) * 1e-6 + 1e-6)


@jit
def _upsert_one(
    m_f: F64, m_id: I64, m_i: I32, m_b: I8, htab: I32,
    p_hot: F32, p_f: F64, p_i: I32, bt: I64, bb: F32, meta: I64, fmeta: F64,
    hi: int, lo: int, kind: int, lat: float, lon: float, rating: float,
    spec: int, level: int, status: int, cell: int,
) -> int:  # fmt: skip
    # the random reads ahead (id table, the artisan's rows, its old and new leaves and
    # their ancestors) mostly do not depend on one another: start them together
    home = id_home(hi, lo, kind, htab.shape[0] - 1)
    prefetch(htab, home * htab.strides[0])
    if status == 0:
        prefetch_path(bt, cell | (np.int64(spec) << SPEC_SHIFT))
    s0 = htab[home]
    if s0 >= 0:
        prefetch(m_id, s0 * m_id.strides[0])
        prefetch(m_b, s0 * m_b.strides[0])
        prefetch(m_i, s0 * m_i.strides[0])
        prefetch(m_f, s0 * m_f.strides[0])
    slot, hpos = id_find(htab, m_id, m_b, hi, lo, kind)
    if slot >= 0 and m_i[slot, 0] >= 0:
        ob = m_i[slot, 0]
        op = np.int64(m_i[slot, 1])
        prefetch(p_hot, op * p_hot.strides[0])
        prefetch(p_f, op * p_f.strides[0])
        prefetch(p_i, op * p_i.strides[0])
        if status != 0 or bt[ob, 0] != cell | (np.int64(spec) << SPEC_SHIFT):
            prefetch_path(bt, bt[ob, 0])  # it leaves that leaf
    n = meta[M_N]
    if slot < 0 and (n >= m_f.shape[0] or 2 * (n + 1) > htab.shape[0]):
        return NEED_MAIN
    online = status == 0
    b = -1
    empty = -1
    key = 0
    if online:
        key = cell | (np.int64(spec) << SPEC_SHIFT)
        b, empty = bucket_find(bt, key)
        if b < 0:
            if 2 * (meta[M_NBUCKETS] + tree_rows_needed(bt, key)) > bt.shape[0]:
                return NEED_BUCKETS
            if not can_alloc(0, meta, p_i):
                return NEED_POOL
        elif not (slot >= 0 and m_i[slot, 0] == b):
            cls = bt[b, 3]
            if bt[b, 2] == (0 if cls < 0 else 1 << cls):
                if not can_alloc(cls + 1, meta, p_i):
                    return NEED_POOL
    # ---- no failure possible below this line
    if slot < 0:
        slot = n
        meta[M_N] = n + 1
        htab[hpos] = slot
        m_id[slot, 0] = hi
        m_id[slot, 1] = lo
        m_b[slot, 3] = kind
        m_i[slot, 0] = -1
        m_i[slot, 1] = -1
    else:
        old_b = m_i[slot, 0]
        if old_b >= 0 and not (online and old_b == b):
            _bucket_remove(old_b, m_i[slot, 1], bt, bb, m_i, meta, p_hot, p_f, p_i)
            tree_add(bt, bb, meta, bt[old_b, 0], -1)
            meta[M_CNT + m_b[slot, 0]] -= 1
            m_i[slot, 0] = -1
            m_i[slot, 1] = -1
    m_f[slot, 0] = lat
    m_f[slot, 1] = lon
    m_f[slot, 2] = rating
    m_b[slot, 0] = spec
    m_b[slot, 1] = level
    m_b[slot, 2] = status
    if online:
        if b < 0:
            b = empty
            meta[M_NBUCKETS] += 1
            bt[b, 0] = key
            bt[b, 1] = -1
            bt[b, 2] = 0
            bt[b, 3] = -1
            box_reset(bb, b)
        rr = fmeta[F_RPM] * (rating - 4.0)  # same expression and order as the policy
        bonus = fmeta[level] + rr
        hi_bonus = _bonus_hi(bonus)
        last = True  # the entry is its block's last (to be put in its band's region)
        if m_i[slot, 0] == b:
            pos = m_i[slot, 1]
            if bonus_band(p_hot[pos, 3]) != bonus_band(hi_bonus):  # out, and in at the end
                block_remove(b, pos, bt, m_i, p_hot, p_f, p_i)
                pos = int(bt[b, 1] + bt[b, 2])
                bt[b, 2] += 1
                p_i[pos, 0] = slot
            else:
                last = False
        else:
            pos = _bucket_add(b, slot, bt, m_i, meta, p_hot, p_f, p_i)
            m_i[slot, 0] = b
            meta[M_CNT + spec] += 1
            meta[M_NBUCKETS] += tree_add(bt, bb, meta, key, 1)
        m_i[slot, 1] = pos
        la = lat * DEG2RAD
        lo_ = lon * DEG2RAD
        cl = math.cos(la)
        p_hot[pos, 0] = cl * math.cos(lo_)
        p_hot[pos, 1] = cl * math.sin(lo_)
        p_hot[pos, 2] = math.sin(la)
        p_hot[pos, 3] = hi_bonus
        p_f[pos, 0] = lat
        p_f[pos, 1] = lon
        p_f[pos, 2] = rr
        p_i[pos, 1] = level
        box_add(bb, b, pos, p_hot)
        if last:
            block_insert(b, pos, bt, m_i, p_hot, p_f, p_i)
        tree_grow(bt, bb, b)
        if bonus > fmeta[F_MAXB + spec]:
            fmeta[F_MAXB + spec] = bonus
    return OK


@jit
def k_upsert(
    desc: int, hi: int, lo: int, kind: int, lat: float, lon: float, rating: float,
    spec: int, level: int, status: int, cell: int,
) -> int:  # fmt: skip
    """Single-row upsert (returns OK or NEED_*); ``desc`` is the address of the store's
    descriptor (:meth:`matching.store.Store.pack`): only scalars cross the boundary."""
    d = desc_view(desc)
    return _upsert_one(
        arr2(d, D_MF, np.float64), arr2(d, D_MID, np.int64), arr2(d, D_MI, np.int32),
        arr2(d, D_MB, np.int8), arr1(d, D_HTAB, np.int32), arr2(d, D_PHOT, np.float32),
        arr2(d, D_PF, np.float64), arr2(d, D_PI, np.int32), arr2(d, D_BT, np.int64),
        arr2(d, D_BB, np.float32), arr1(d, D_META, np.int64), arr1(d, D_FMETA, np.float64),
        hi, lo, kind, lat, lon, rating, spec, level, status, cell,
    )  # fmt: skip


@jit
def _uuid_words(addr: int, n: int) -> tuple[bool, int, int]:
    """(ok, hi, lo) of the canonical (lowercase) UUID text at ``addr`` (``n`` bytes)."""
    if n != 36:
        return False, 0, 0
    return uuid_words(_carray(as_voidptr(addr), (36,), np.uint8))


@jit
def k_upsert_obj(
    desc: int, artisan_id: Any, lat: Any, lon: Any, specialty: Any, level: Any, rating: Any,
    status: Any, cell: int,
) -> int:  # fmt: skip
    """:meth:`matching.ArtisanIndex.upsert` on the caller's objects as they are
    (:data:`matching.pyobj.pyref`), with the H3 cell of an ONLINE artisan: OK or
    NEED_*, or UP_SLOW unless every argument is what the common upsert passes (a
    canonical UUID str, exact floats within range, known names), so that the Python
    side validates (and raises) only off this path."""
    d = desc_view(desc)
    la = py_as_float(lat)
    lo = py_as_float(lon)
    rt = py_as_float(rating)
    if not (-90.0 <= la <= 90.0 and -180.0 <= lo <= 180.0 and RATING_MIN <= rt <= RATING_MAX):
        return UP_SLOW
    sp = py_dict_int(d[D_SPECS], specialty)
    lv = py_dict_int(d[D_LEVELS], level)
    stc = py_dict_int(d[D_STATUSES], status)
    if sp < 0 or lv < 0 or stc < 0 or (stc == 0 and cell <= 0):
        return UP_SLOW
    addr, n = py_str_utf8(artisan_id)
    ok, hi, lo_ = _uuid_words(addr, n)
    if not ok:
        return UP_SLOW
    return _upsert_one(
        arr2(d, D_MF, np.float64), arr2(d, D_MID, np.int64), arr2(d, D_MI, np.int32),
        arr2(d, D_MB, np.int8), arr1(d, D_HTAB, np.int32), arr2(d, D_PHOT, np.float32),
        arr2(d, D_PF, np.float64), arr2(d, D_PI, np.int32), arr2(d, D_BT, np.int64),
        arr2(d, D_BB, np.float32), arr1(d, D_META, np.int64), arr1(d, D_FMETA, np.float64),
        hi, lo_, 0, la, lo, rt, sp, lv, stc, cell if stc == 0 else 0,
    )  # fmt: skip


@jit
def k_upsert_batch(
    m_f: F64, m_id: I64, m_i: I32, m_b: I8, htab: I32,
    p_hot: F32, p_f: F64, p_i: I32, bt: I64, bb: F32, meta: I64, fmeta: F64,
    his: I64, los: I64, kinds: I8, lats: F64, lons: F64, ratings: F64,
    specs: I8, levels: I8, statuses: I8, cells: U64, start: int,
) -> tuple[int, int]:  # fmt: skip
    """Upsert rows ``start..``; returns (code, index of the first row not applied)."""
    for j in range(start, his.shape[0]):
        code = _upsert_one(
            m_f, m_id, m_i, m_b, htab, p_hot, p_f, p_i, bt, bb, meta, fmeta,
            his[j], los[j], kinds[j], lats[j], lons[j], ratings[j],
            specs[j], levels[j], statuses[j], np.int64(cells[j]),
        )  # fmt: skip
        if code != OK:
            return code, j
    return OK, his.shape[0]


@jit
def k_remove(
    m_f: F64, m_id: I64, m_i: I32, m_b: I8, htab: I32,
    p_hot: F32, p_f: F64, p_i: I32, bt: I64, bb: F32, meta: I64, fmeta: F64,
    hi: int, lo: int, kind: int,
) -> bool:  # fmt: skip
    slot, hpos = id_find(htab, m_id, m_b, hi, lo, kind)
    if slot < 0:
        return False
    if m_i[slot, 0] >= 0:
        _bucket_remove(m_i[slot, 0], m_i[slot, 1], bt, bb, m_i, meta, p_hot, p_f, p_i)
        tree_add(bt, bb, meta, bt[m_i[slot, 0], 0], -1)
        meta[M_CNT + m_b[slot, 0]] -= 1
    id_delete_at(htab, hpos, m_id, m_b)
    last = meta[M_N] - 1
    if slot != last:
        _, lpos = id_find(htab, m_id, m_b, m_id[last, 0], m_id[last, 1], m_b[last, 3])
        htab[lpos] = slot
        for c in range(3):
            m_f[slot, c] = m_f[last, c]
        for c in range(2):
            m_id[slot, c] = m_id[last, c]
            m_i[slot, c] = m_i[last, c]
        for c in range(4):
            m_b[slot, c] = m_b[last, c]
        if m_i[slot, 1] >= 0:
            p_i[m_i[slot, 1], 0] = slot
    meta[M_N] = last
    return True


@jit
def k_compact(
    bt: I64, bb: F32, cls: I64, starts: I64, m_i: I32,
    o_hot: F32, o_f: F64, o_i: I32, n_hot: F32, n_f: F64, n_i: I32,
) -> None:  # fmt: skip
    """Copy every bucket's block to ``starts[row]`` of the new pool; tighten the boxes."""
    for b in range(bt.shape[0]):
        if bt[b, 0] < 0 or not is_leaf(bt[b, 0]):
            continue
        size = bt[b, 2]
        box_reset(bb, b)
        if size == 0:
            bt[b, 1] = -1
            bt[b, 3] = -1
            continue
        src = bt[b, 1]
        dst = starts[b]
        for j in range(size):
            for c in range(4):
                n_hot[dst + j, c] = o_hot[src + j, c]
            for c in range(3):
                n_f[dst + j, c] = o_f[src + j, c]
            s = o_i[src + j, 0]
            n_i[dst + j, 0] = s
            n_i[dst + j, 1] = o_i[src + j, 1]
            m_i[s, 1] = dst + j
            box_add(bb, b, dst + j, n_hot)
        bt[b, 1] = dst
        bt[b, 3] = cls[b]
