# numba kernels mix Python ints with numpy scalars (np.int64/np.uint64 steer numba's
# typing); mypy cannot model that, so these codes are relaxed here only.
# mypy: disable-error-code="return-value,no-any-return,assignment,arg-type"
"""Query kernels: the best-first tree search, the exact brute force, the naive scan.

Both search kernels keep a sorted top-k buffer (``o_f`` = score, distance rows;
``o_i[0]`` = slots) holding the k best plus every entry tied with the k-th on
(score, distance), so that ties can be ordered by id afterwards.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from matching.jit import (
    BB_HI,
    BB_LO,
    BB_MAXB,
    D_BB,
    D_BT,
    D_CLS,
    D_FMETA,
    D_HK,
    D_HV,
    D_MB,
    D_META,
    D_MID,
    D_PF,
    D_PHOT,
    D_PI,
    D_QEXCL,
    D_QF,
    D_QHEX,
    D_QI,
    D_QW,
    D_SPECS,
    DEG2RAD,
    F32,
    F64,
    F_MAXB,
    F_RPM,
    FAST_K_MAX,
    I8,
    I32,
    I64,
    M_CNT,
    M_ROOT,
    N_BASE,
    PREFILTER_MARGIN_KM,
    Q_BRUTE,
    Q_DONE,
    Q_OVERFLOW,
    R_KM,
    SCORE_EPS,
    SPEC_SHIFT,
    U8,
    arr1,
    arr2,
    band_top,
    desc_view,
    jit,
    mix64,
    prefetch,
    prefetch_rows,
)
from matching.kernels_answer import answer, finalize
from matching.kernels_tree import RES_SHIFT, bucket_find, child_key, is_leaf, root_key
from matching.pyobj import (
    py_as_float,
    py_as_int,
    py_dict_int,
    py_none,
)


@jit
def _before(sa: float, da: float, a: int, sb: float, db: float, b: int, m_id: I64, m_b: I8) -> bool:
    """Strict ranking order: score, distance, then id (kind, then 128-bit value)."""
    if sa != sb:
        return sa < sb
    if da != db:
        return da < db
    if m_b[a, 3] != m_b[b, 3]:
        return m_b[a, 3] < m_b[b, 3]
    if m_id[a, 0] != m_id[b, 0]:
        return m_id[a, 0] < m_id[b, 0]
    return m_id[a, 1] < m_id[b, 1]


@jit
def _scan(
    p0: int, p1: int, p_hot: F32, p_f: F64, p_i: I32, m_id: I64, m_b: I8, fmeta: F64,
    qx: float, qy: float, qz: float, qlat: float, qlon: float, cosq: float,
    k: int, max_km: float, excl: I64, o_score: F64, o_dist: F64, o_slot: I64, count: int,
    lb_box: float,
) -> int:  # fmt: skip
    """Rank pool entries p0..p1 (one block, in bonus band order) into the sorted
    top-k buffer; -1 on buffer overflow.

    ``lb_box`` is a lower bound of the distance to every entry (the block's box):
    once it minus the top of an entry's band exceeds the k-th score, no later entry
    of the block (whose bonus is no larger) can rank, and the scan stops.
    """
    cap = o_score.shape[0]
    nex = excl.shape[0]
    qlat_r = qlat * DEG2RAD
    for p in range(p0, p1):
        full = count >= k
        if full and lb_box - band_top(p_hot[p, 3]) > o_score[k - 1] + SCORE_EPS:
            break
        # float32 chord lower bound with the entry's own (rounded-up) bonus
        dx = p_hot[p, 0] - qx
        dy = p_hot[p, 1] - qy
        dz = p_hot[p, 2] - qz
        lbd = R_KM * math.sqrt(dx * dx + dy * dy + dz * dz) - PREFILTER_MARGIN_KM
        if lbd > max_km:
            continue
        if full and lbd - p_hot[p, 3] > o_score[k - 1] + SCORE_EPS:
            continue
        # exact contract haversine, float64
        p2 = p_f[p, 0] * DEG2RAD
        s1 = math.sin((p2 - qlat_r) * 0.5)
        s2 = math.sin(((p_f[p, 1] - qlon) * DEG2RAD) * 0.5)
        a = s1 * s1 + cosq * math.cos(p2) * s2 * s2
        if a > 1.0:
            a = 1.0
        d = 2.0 * R_KM * math.asin(math.sqrt(a))
        if d > max_km:
            continue
        sc = d - fmeta[p_i[p, 1]] - p_f[p, 2]
        if full and (sc > o_score[k - 1] or (sc == o_score[k - 1] and d > o_dist[k - 1])):
            continue
        slot = p_i[p, 0]
        if nex > 0:
            e = np.searchsorted(excl, slot)
            if e < nex and excl[e] == slot:
                continue
        if count >= cap:
            return -1
        j = count
        while j > 0 and _before(
            sc, d, slot, o_score[j - 1], o_dist[j - 1], o_slot[j - 1], m_id, m_b
        ):
            o_score[j] = o_score[j - 1]
            o_dist[j] = o_dist[j - 1]
            o_slot[j] = o_slot[j - 1]
            j -= 1
        o_score[j] = sc
        o_dist[j] = d
        o_slot[j] = slot
        count += 1
        if count > k:
            ks = o_score[k - 1]
            kd = o_dist[k - 1]
            while count > k and (
                o_score[count - 1] > ks or (o_score[count - 1] == ks and o_dist[count - 1] > kd)
            ):
                count -= 1
    return count


@jit
def _qsetup(qlat: float, qlon: float) -> tuple[float, float, float, float]:
    la = qlat * DEG2RAD
    lo = qlon * DEG2RAD
    cl = math.cos(la)
    return cl * math.cos(lo), cl * math.sin(lo), math.sin(la), cl


@jit
def _box_lb_km(bb: F32, b: int, qx: float, qy: float, qz: float) -> float:
    """Lower bound (km) of the distance from q to any member of bucket ``b``.

    Chord distance to the members' float32 bounding box; chord <= arc.
    """
    dx = max(bb[b, BB_LO] - qx, 0.0, qx - bb[b, BB_HI])
    dy = max(bb[b, BB_LO + 1] - qy, 0.0, qy - bb[b, BB_HI + 1])
    dz = max(bb[b, BB_LO + 2] - qz, 0.0, qz - bb[b, BB_HI + 2])
    return R_KM * math.sqrt(dx * dx + dy * dy + dz * dz) - PREFILTER_MARGIN_KM


@jit
def _heap_push(hk: F64, hv: I64, n: int, key: float, val: int) -> int:
    """Push onto the binary min-heap ``hk``/``hv`` of ``n`` entries; returns the new size."""
    i = n
    while i > 0:
        up = (i - 1) >> 1
        if hk[up] <= key:
            break
        hk[i] = hk[up]
        hv[i] = hv[up]
        i = up
    hk[i] = key
    hv[i] = val
    return n + 1


@jit
def _heap_pop(hk: F64, hv: I64, n: int) -> int:
    """Drop the top of the heap; returns the new size."""
    n -= 1
    key = hk[n]
    val = hv[n]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and hk[c + 1] < hk[c]:
            c += 1
        if hk[c] >= key:
            break
        hk[i] = hk[c]
        hv[i] = hv[c]
        i = c
    hk[i] = key
    hv[i] = val
    return n


@jit
def _search(
    st: Any, excl: I64, o_f: F64, o_i: I64, hk: F64, hv: I64,
    qlat: float, qlon: float, max_km: float, spec: int, k: int,
) -> tuple[int, int]:  # fmt: skip
    """:func:`_search_arrays` on a :class:`matching.state.State`'s arrays."""
    return _search_arrays(
        st.bt, st.bb, st.p_hot, st.p_f, st.p_i, st.m_id, st.m_b, st.meta, st.fmeta,
        excl, o_f, o_i, hk, hv, qlat, qlon, max_km, spec, k,
    )  # fmt: skip


@jit
def _search_arrays(
    bt: I64, bb: F32, p_hot: F32, p_f: F64, p_i: I32, m_id: I64, m_b: I8, meta: I64,
    fmeta: F64, excl: I64, o_f: F64, o_i: I64, hk: F64, hv: I64,
    qlat: float, qlon: float, max_km: float, spec: int, k: int,
) -> tuple[int, int]:  # fmt: skip
    """Best-first search of the node tree (:mod:`matching.kernels_tree`); (code, count).

    Nodes are taken by increasing lower bound of their members' scores (box
    distance minus the node's largest bonus); the search ends when that bound
    exceeds the k-th best score, so only nodes that could still hold a top-k
    member (or a tie with it) are opened.  ``hk``/``hv`` is the heap's storage.
    Codes: Q_DONE, Q_OVERFLOW (too many exact ties for the buffer) or Q_BRUTE
    (heap full): the caller then uses :func:`k_query_brute`.
    """
    if meta[M_CNT + spec] == 0:
        return Q_DONE, 0
    qx, qy, qz, cosq = _qsetup(qlat, qlon)
    o_score = o_f[0]
    o_dist = o_f[1]
    o_slot = o_i[0]
    hcap = hk.shape[0]
    n = 0
    r0 = M_ROOT + spec * N_BASE
    prefetch_rows(meta, r0, N_BASE)
    for base in range(N_BASE):
        if meta[r0 + base] > 0:
            b, _ = bucket_find(bt, root_key(base, spec))
            lb = _box_lb_km(bb, b, qx, qy, qz)
            if lb <= max_km:
                n = _heap_push(hk, hv, n, lb - bb[b, BB_MAXB], b)
    count = 0
    while n > 0:
        if count >= k and hk[0] > o_score[k - 1] + SCORE_EPS:
            break  # no member of any node left can make the top k
        b = hv[0]
        n = _heap_pop(hk, hv, n)
        key = bt[b, 0]
        if is_leaf(key):
            p0 = int(bt[b, 1])
            size = int(bt[b, 2])
            prefetch_rows(p_f, p0, size)
            prefetch_rows(p_i, p0, size)
            count = _scan(
                p0, p0 + size, p_hot, p_f, p_i, m_id, m_b, fmeta,
                qx, qy, qz, qlat, qlon, cosq, k, max_km, excl, o_score, o_dist, o_slot, count,
                _box_lb_km(bb, b, qx, qy, qz),
            )  # fmt: skip
            if count < 0:
                return Q_OVERFLOW, 0
            continue
        res = (key >> RES_SHIFT) & 15
        mask = bt[b, 3]
        # the children's rows (bt and bb: one line each) are independent random
        # reads: start them all before the probes so that their cache misses overlap
        tmask = np.uint64(bt.shape[0] - 1)
        for d in range(7):
            if (mask >> d) & 1:
                h = np.int64(mix64(np.uint64(child_key(key, res, d))) & tmask)
                prefetch(bt, h * bt.strides[0])
        for d in range(7):
            if (mask >> d) & 1 == 0:
                continue
            c, _ = bucket_find(bt, child_key(key, res, d))
            if bt[c, 2] == 0:
                continue
            lb = _box_lb_km(bb, c, qx, qy, qz)
            if lb > max_km:
                continue
            pri = lb - bb[c, BB_MAXB]
            if count >= k and pri > o_score[k - 1] + SCORE_EPS:
                continue
            if n >= hcap:
                return Q_BRUTE, 0
            if is_leaf(bt[c, 0]):  # likely opened soon: start reading its members
                prefetch_rows(p_hot, bt[c, 1], bt[c, 2])
            n = _heap_push(hk, hv, n, pri, c)
    return Q_DONE, count


@jit
def k_query_tree(
    st: Any, excl: I64, o_f: F64, o_i: I64, o_hex: U8, hk: F64, hv: I64,
    qlat: float, qlon: float, max_km: float, spec: int, k: int,
) -> tuple[int, int, int]:  # fmt: skip
    """One query (see :func:`_search`): (code, count, flags of
    :func:`matching.kernels_answer.finalize`).

    ``st`` is a :class:`matching.state.State`.
    """
    code, count = _search(st, excl, o_f, o_i, hk, hv, qlat, qlon, max_km, spec, k)
    if code != Q_DONE:
        return code, 0, 0
    return Q_DONE, count, finalize(count, o_f, o_i, st.m_id, st.m_b, o_hex)


@jit
def k_query_fast(desc: int, qlat: Any, qlon: Any, specialty: Any, k: Any, max_km: Any) -> Any:
    """One query without exclusions: the ``list[Candidate]``, or None when the
    caller must run the general path (:meth:`matching.ArtisanIndex.query`).

    The arguments are the caller's objects as they are (:data:`matching.pyobj.pyref`):
    the kernel takes them only if they are what the common query passes (exact
    floats within range, a known specialty, an exact int ``1 <= k <= FAST_K_MAX``),
    and answers None otherwise, so that the Python side validates (and raises)
    only off this path.  None too when the search needs the general path: too
    many exact ties for the buffers, its heap full, or a non-UUID id among the results.

    ``desc`` is the address of the store's descriptor
    (:meth:`matching.store.Store.pack`), from which the kernel views every array
    it needs (unboxing an array costs ~2 µs with cold caches, a StructRef ~15 µs).
    The answer is built here, through the C API (:mod:`matching.pyobj`): the
    caller runs no Python code on it.
    """
    d = desc_view(desc)
    la = py_as_float(qlat)
    lo = py_as_float(qlon)
    mk = py_as_float(max_km)
    kk = py_as_int(k)
    sp = py_dict_int(d[D_SPECS], specialty)
    if not (-90.0 <= la <= 90.0 and -180.0 <= lo <= 180.0 and 0.0 <= mk < 1e308):
        return py_none()
    if sp < 0 or kk < 1 or kk > FAST_K_MAX:
        return py_none()
    return _query_fast(d, la, lo, mk, sp, kk)


@jit
def _query_fast(d: I64, qlat: float, qlon: float, max_km: float, spec: int, k: int) -> Any:
    """:func:`k_query_fast` on validated values (``d``: the descriptor)."""
    bt = arr2(d, D_BT, np.int64)
    m_id = arr2(d, D_MID, np.int64)
    m_b = arr2(d, D_MB, np.int8)
    o_f = arr2(d, D_QF, np.float64)
    o_i = arr2(d, D_QI, np.int64)
    code, count = _search_arrays(
        bt, arr2(d, D_BB, np.float32), arr2(d, D_PHOT, np.float32), arr2(d, D_PF, np.float64),
        arr2(d, D_PI, np.int32), m_id, m_b, arr1(d, D_META, np.int64),
        arr1(d, D_FMETA, np.float64), arr1(d, D_QEXCL, np.int64), o_f, o_i,
        arr1(d, D_HK, np.float64), arr1(d, D_HV, np.int64), qlat, qlon, max_km, spec, k,
    )  # fmt: skip
    if code != Q_DONE:
        return py_none()
    w, text = arr2(d, D_QW, np.int64), arr2(d, D_QHEX, np.uint8)
    return answer(min(count, k), o_f, o_i, m_id, m_b, w, text, d[D_CLS])


@jit
def k_query_brute(
    bt: I64, bb: F32, p_hot: F32, p_f: F64, p_i: I32, m_id: I64, m_b: I8, fmeta: F64,
    excl: I64, o_f: F64, o_i: I64, o_hex: U8,
    qlat: float, qlon: float, max_km: float, spec: int, k: int,
) -> tuple[int, int, int]:  # fmt: skip
    """Exact scan of every ONLINE artisan of ``spec`` (no H3 walk); (code, count, flags)."""
    qx, qy, qz, cosq = _qsetup(qlat, qlon)
    maxb = fmeta[F_MAXB + spec]
    o_score = o_f[0]
    count = 0
    for b in range(bt.shape[0]):
        key = bt[b, 0]
        if key < 0 or (key >> SPEC_SHIFT) & 7 != spec or not is_leaf(key):
            continue
        size = int(bt[b, 2])
        if size == 0:
            continue
        lbc = _box_lb_km(bb, b, qx, qy, qz)
        if lbc > max_km or (count >= k and lbc - maxb > o_score[k - 1] + SCORE_EPS):
            continue
        p0 = int(bt[b, 1])
        count = _scan(
            p0, p0 + size, p_hot, p_f, p_i, m_id, m_b, fmeta,
            qx, qy, qz, qlat, qlon, cosq, k, max_km, excl, o_score, o_f[1], o_i[0], count, lbc,
        )  # fmt: skip
        if count < 0:
            return Q_OVERFLOW, 0, 0
    return Q_DONE, count, finalize(count, o_f, o_i, m_id, m_b, o_hex)


@jit
def k_naive_scan(
    m_f: F64, m_b: I8, n: int, spec: int, qlat: float, qlon: float, k: int,
    max_km: float, fmeta: F64, o_score: F64, o_slot: I64,
) -> int:  # fmt: skip
    """Reference for benchmarks only: scan all n artisans, no index, no prefilter."""
    count = 0
    cosq = math.cos(qlat * DEG2RAD)
    for s in range(n):
        if m_b[s, 2] != 0 or m_b[s, 0] != spec:
            continue
        p2 = m_f[s, 0] * DEG2RAD
        s1 = math.sin((p2 - qlat * DEG2RAD) * 0.5)
        s2 = math.sin(((m_f[s, 1] - qlon) * DEG2RAD) * 0.5)
        a = min(1.0, s1 * s1 + cosq * math.cos(p2) * s2 * s2)
        d = 2.0 * R_KM * math.asin(math.sqrt(a))
        if d > max_km:
            continue
        sc = d - fmeta[m_b[s, 1]] - fmeta[F_RPM] * (m_f[s, 2] - 4.0)
        if count == k and sc >= o_score[k - 1]:
            continue
        j = count if count < k else k - 1
        while j > 0 and o_score[j - 1] > sc:
            o_score[j] = o_score[j - 1]
            o_slot[j] = o_slot[j - 1]
            j -= 1
        o_score[j] = sc
        o_slot[j] = s
        if count < k:
            count += 1
    return count
