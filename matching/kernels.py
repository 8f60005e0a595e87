# numba kernels mix Python ints with numpy scalars (np.int64/np.uint64 are needed to
# steer numba's typing); mypy cannot model that, so these codes are relaxed here only.
# mypy: disable-error-code="return-value,no-any-return,assignment,arg-type"
"""Numba kernels of the matching core.

All mutable state lives in plain numpy arrays owned by :class:`ArtisanIndex`;
the kernels never allocate, they report ``NEED_*`` codes instead so that the
Python side can grow an array (capacity doubling) and retry.  Every kernel
checks all capacities before mutating anything.

Every kernel is compiled with ``cache=True`` (the machine code is stored next to
this file in ``__pycache__``); :func:`matching.warmup` forces compilation or
cache loading once, at server start-up.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final, TypeVar, cast

import numpy as np
import numpy.typing as npt

try:
    import numba
except ImportError as exc:  # pragma: no cover - exercised only without numba
    raise ImportError(
        "matching: numba is REQUIRED and could not be imported "
        f"({exc}). Install the pinned version (pip install numba==0.68.1). "
        "There is deliberately no pure-Python fallback: it would be ~1000x slower "
        "and silently break the dispatch latency budget."
    ) from exc

from matching.codes import EARTH_RADIUS_KM

F = TypeVar("F", bound=Callable[..., Any])


def _jit(fn: F) -> F:
    return cast(F, numba.njit(cache=True)(fn))


F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
I8 = npt.NDArray[np.int8]
U8 = npt.NDArray[np.uint8]
U64 = npt.NDArray[np.uint64]

R_KM: Final = EARTH_RADIUS_KM
DEG2RAD: Final = math.pi / 180.0
#: Slack (km) for the float32 unit-vector prefilter (float32 error is < 2 m).
PREFILTER_MARGIN_KM: Final = 0.005
#: Slack on score comparisons used only to *skip* work (never to accept).
SCORE_EPS: Final = 1e-9

# st[] slots
ST_N: Final = 0
ST_POOL_USED: Final = 1
ST_NBUCKETS: Final = 2

# mutation return codes
OK: Final = 0
NEED_MAIN: Final = 1
NEED_POOL: Final = 2
NEED_BUCKETS: Final = 3

# query return codes
Q_DONE: Final = 0
Q_MORE: Final = 1
Q_OVERFLOW: Final = 2
Q_BRUTE: Final = 3

SPEC_SHIFT: Final = 56  # H3 cell bits 56-58 are always zero: the specialty goes there
HEX: Final = np.frombuffer(b"0123456789abcdef", dtype=np.uint8).copy()
TOP_BIT: Final = np.uint64(1 << 63)


# --------------------------------------------------------------------------- hashing


@_jit
def _mix64(x: np.uint64) -> np.uint64:
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xC4CEB9FE1A85EC53)
    x ^= x >> np.uint64(33)
    return x


@_jit
def _id_home(hi: int, lo: int, kind: int, mask: int) -> np.int64:
    h = _mix64(np.uint64(hi) ^ _mix64(np.uint64(lo) + np.uint64(kind)))
    return np.int64(h & np.uint64(mask))


@_jit
def _id_find(htab: I32, m_id: I64, m_b: I8, hi: int, lo: int, kind: int) -> tuple[int, int]:
    """Return (slot, table position); slot is -1 if absent (position is then empty)."""
    mask = htab.shape[0] - 1
    i = _id_home(hi, lo, kind, mask)
    while True:
        s = htab[i]
        if s < 0:
            return -1, i
        if m_id[s, 0] == hi and m_id[s, 1] == lo and m_b[s, 3] == kind:
            return s, i
        i = (i + 1) & mask


@_jit
def _id_delete_at(htab: I32, i: int, m_id: I64, m_b: I8) -> None:
    """Backward-shift deletion (linear probing, no tombstones)."""
    mask = htab.shape[0] - 1
    j = i
    while True:
        j = (j + 1) & mask
        s = htab[j]
        if s < 0:
            break
        h = _id_home(m_id[s, 0], m_id[s, 1], m_b[s, 3], mask)
        # keep s at j iff its home lies cyclically in (i, j]
        if i <= j:
            stays = i < h <= j
        else:
            stays = h > i or h <= j
        if not stays:
            htab[i] = s
            i = j
    htab[i] = -1


@_jit
def k_rehash_ids(htab: I32, m_id: I64, m_b: I8, n: int) -> None:
    htab[:] = -1
    mask = htab.shape[0] - 1
    for s in range(n):
        i = _id_home(m_id[s, 0], m_id[s, 1], m_b[s, 3], mask)
        while htab[i] >= 0:
            i = (i + 1) & mask
        htab[i] = s


@_jit
def k_lookup(htab: I32, m_id: I64, m_b: I8, hi: int, lo: int, kind: int) -> int:
    return _id_find(htab, m_id, m_b, hi, lo, kind)[0]


@_jit
def k_lookup_many(htab: I32, m_id: I64, m_b: I8, his: I64, los: I64, kinds: I8, out: I64) -> None:
    for j in range(his.shape[0]):
        out[j] = _id_find(htab, m_id, m_b, his[j], los[j], kinds[j])[0]


@_jit
def _bucket_find(bt: I64, key: int) -> tuple[int, int]:
    """Return (row, -1) if ``key`` is in the bucket table, else (-1, empty row)."""
    mask = bt.shape[0] - 1
    i = np.int64(_mix64(np.uint64(key)) & np.uint64(mask))
    while True:
        kk = bt[i, 0]
        if kk < 0:
            return -1, i
        if kk == key:
            return i, -1
        i = (i + 1) & mask


@_jit
def k_rehash_buckets(new: I64, old: I64, p_i: I32, m_i: I32) -> None:
    """Move every bucket row of ``old`` into ``new`` and re-point its artisans."""
    new[:, 0] = -1
    for r in range(old.shape[0]):
        key = old[r, 0]
        if key < 0:
            continue
        _, pos = _bucket_find(new, key)
        for c in range(4):
            new[pos, c] = old[r, c]
        start = old[r, 1]
        for j in range(start, start + old[r, 2]):
            m_i[p_i[j, 0], 0] = pos


# --------------------------------------------------------------------------- pool blocks


@_jit
def _can_alloc(cls: int, fhead: I64, p_i: I32, st: I64) -> bool:
    return fhead[cls] >= 0 or st[ST_POOL_USED] + (1 << cls) <= p_i.shape[0]


@_jit
def _alloc(cls: int, fhead: I64, p_i: I32, st: I64) -> int:
    s = fhead[cls]
    if s >= 0:
        fhead[cls] = p_i[s, 0]
        return int(s)
    s = st[ST_POOL_USED]
    st[ST_POOL_USED] = s + (1 << cls)
    return int(s)


@_jit
def _free(start: int, cls: int, fhead: I64, p_i: I32) -> None:
    p_i[start, 0] = fhead[cls]
    fhead[cls] = start


@_jit
def _pool_copy(src: int, dst: int, p_xyz: F32, p_f: F64, p_i: I32) -> None:
    for c in range(3):
        p_xyz[dst, c] = p_xyz[src, c]
        p_f[dst, c] = p_f[src, c]
    p_i[dst, 0] = p_i[src, 0]
    p_i[dst, 1] = p_i[src, 1]


@_jit
def _bucket_add(
    b: int, slot: int, bt: I64, m_i: I32, fhead: I64, p_xyz: F32, p_f: F64, p_i: I32, st: I64
) -> int:
    start = int(bt[b, 1])
    size = int(bt[b, 2])
    cls = int(bt[b, 3])
    cap = 0 if cls < 0 else 1 << cls
    if size == cap:
        ncls = cls + 1
        ns = _alloc(ncls, fhead, p_i, st)
        for j in range(size):
            _pool_copy(start + j, ns + j, p_xyz, p_f, p_i)
            m_i[p_i[ns + j, 0], 1] = ns + j
        if cls >= 0:
            _free(start, cls, fhead, p_i)
        start = ns
        bt[b, 1] = ns
        bt[b, 3] = ncls
    pos = start + size
    bt[b, 2] = size + 1
    p_i[pos, 0] = slot
    return pos


@_jit
def _bucket_remove(
    b: int, pos: int, bt: I64, m_i: I32, fhead: I64, p_xyz: F32, p_f: F64, p_i: I32
) -> None:
    start = int(bt[b, 1])
    size = int(bt[b, 2])
    last = start + size - 1
    if pos != last:
        _pool_copy(last, pos, p_xyz, p_f, p_i)
        m_i[p_i[pos, 0], 1] = pos
    bt[b, 2] = size - 1
    if size == 1:
        _free(start, int(bt[b, 3]), fhead, p_i)
        bt[b, 1] = -1
        bt[b, 3] = -1


# --------------------------------------------------------------------------- mutation


@_jit
def _upsert_one(
    m_f: F64, m_id: I64, m_i: I32, m_b: I8, htab: I32,
    p_xyz: F32, p_f: F64, p_i: I32, fhead: I64, bt: I64,
    st: I64, s_cnt: I64, s_maxb: F64, pol: F64,
    hi: int, lo: int, kind: int, lat: float, lon: float, rating: float,
    spec: int, level: int, status: int, cell: int,
) -> int:  # fmt: skip
    slot, hpos = _id_find(htab, m_id, m_b, hi, lo, kind)
    n = st[ST_N]
    if slot < 0 and (n >= m_f.shape[0] or 2 * (n + 1) > htab.shape[0]):
        return NEED_MAIN
    online = status == 0
    b = -1
    empty = -1
    key = 0
    if online:
        key = cell | (np.int64(spec) << SPEC_SHIFT)
        b, empty = _bucket_find(bt, key)
        if b < 0:
            if 2 * (st[ST_NBUCKETS] + 1) > bt.shape[0]:
                return NEED_BUCKETS
            if not _can_alloc(0, fhead, p_i, st):
                return NEED_POOL
        elif not (slot >= 0 and m_i[slot, 0] == b):
            cls = bt[b, 3]
            if bt[b, 2] == (0 if cls < 0 else 1 << cls):
                if not _can_alloc(cls + 1, fhead, p_i, st):
                    return NEED_POOL
    # ---- no failure possible below this line
    if slot < 0:
        slot = n
        st[ST_N] = n + 1
        htab[hpos] = slot
        m_id[slot, 0] = hi
        m_id[slot, 1] = lo
        m_b[slot, 3] = kind
        m_i[slot, 0] = -1
        m_i[slot, 1] = -1
    else:
        old_b = m_i[slot, 0]
        if old_b >= 0 and not (online and old_b == b):
            _bucket_remove(old_b, m_i[slot, 1], bt, m_i, fhead, p_xyz, p_f, p_i)
            s_cnt[m_b[slot, 0]] -= 1
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
            st[ST_NBUCKETS] += 1
            bt[b, 0] = key
            bt[b, 1] = -1
            bt[b, 2] = 0
            bt[b, 3] = -1
        if m_i[slot, 0] == b:
            pos = m_i[slot, 1]
        else:
            pos = _bucket_add(b, slot, bt, m_i, fhead, p_xyz, p_f, p_i, st)
            m_i[slot, 0] = b
            m_i[slot, 1] = pos
            s_cnt[spec] += 1
        la = lat * DEG2RAD
        lo_ = lon * DEG2RAD
        cl = math.cos(la)
        p_xyz[pos, 0] = cl * math.cos(lo_)
        p_xyz[pos, 1] = cl * math.sin(lo_)
        p_xyz[pos, 2] = math.sin(la)
        p_f[pos, 0] = lat
        p_f[pos, 1] = lon
        p_f[pos, 2] = rating
        p_i[pos, 1] = level
        bonus = pol[level] + pol[3] * (rating - 4.0)
        if bonus > s_maxb[spec]:
            s_maxb[spec] = bonus
    return OK


@_jit
def k_upsert(
    m_f: F64, m_id: I64, m_i: I32, m_b: I8, htab: I32,
    p_xyz: F32, p_f: F64, p_i: I32, fhead: I64, bt: I64,
    st: I64, s_cnt: I64, s_maxb: F64, pol: F64,
    hi: int, lo: int, kind: int, lat: float, lon: float, rating: float,
    spec: int, level: int, status: int, cell: int,
) -> int:  # fmt: skip
    return _upsert_one(
        m_f, m_id, m_i, m_b, htab, p_xyz, p_f, p_i, fhead, bt, st, s_cnt, s_maxb, pol,
        hi, lo, kind, lat, lon, rating, spec, level, status, cell,
    )  # fmt: skip


@_jit
def k_upsert_batch(
    m_f: F64, m_id: I64, m_i: I32, m_b: I8, htab: I32,
    p_xyz: F32, p_f: F64, p_i: I32, fhead: I64, bt: I64,
    st: I64, s_cnt: I64, s_maxb: F64, pol: F64,
    his: I64, los: I64, kinds: I8, lats: F64, lons: F64, ratings: F64,
    specs: I8, levels: I8, statuses: I8, cells: U64, start: int,
) -> tuple[int, int]:  # fmt: skip
    """Upsert rows ``start..``; returns (code, index of the first row not applied)."""
    for j in range(start, his.shape[0]):
        code = _upsert_one(
            m_f, m_id, m_i, m_b, htab, p_xyz, p_f, p_i, fhead, bt, st, s_cnt, s_maxb, pol,
            his[j], los[j], kinds[j], lats[j], lons[j], ratings[j],
            specs[j], levels[j], statuses[j], np.int64(cells[j]),
        )  # fmt: skip
        if code != OK:
            return code, j
    return OK, his.shape[0]


@_jit
def k_remove(
    m_f: F64, m_id: I64, m_i: I32, m_b: I8, htab: I32,
    p_xyz: F32, p_f: F64, p_i: I32, fhead: I64, bt: I64,
    st: I64, s_cnt: I64, s_maxb: F64, pol: F64,
    hi: int, lo: int, kind: int,
) -> bool:  # fmt: skip
    slot, hpos = _id_find(htab, m_id, m_b, hi, lo, kind)
    if slot < 0:
        return False
    if m_i[slot, 0] >= 0:
        _bucket_remove(m_i[slot, 0], m_i[slot, 1], bt, m_i, fhead, p_xyz, p_f, p_i)
        s_cnt[m_b[slot, 0]] -= 1
    _id_delete_at(htab, hpos, m_id, m_b)
    last = st[ST_N] - 1
    if slot != last:
        _, lpos = _id_find(htab, m_id, m_b, m_id[last, 0], m_id[last, 1], m_b[last, 3])
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
    st[ST_N] = last
    return True


# --------------------------------------------------------------------------- query


@_jit
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


@_jit
def _scan(
    p0: int, p1: int, p_xyz: F32, p_f: F64, p_i: I32, m_id: I64, m_b: I8, pol: F64,
    qx: float, qy: float, qz: float, qlat: float, qlon: float, cosq: float, maxb: float,
    k: int, max_km: float, excl: I64, o_score: F64, o_dist: F64, o_slot: I64, count: int,
) -> int:  # fmt: skip
    """Rank pool entries p0..p1 into the sorted top-k buffer; -1 on buffer overflow.

    The buffer keeps the k best plus every entry tied with the k-th on
    (score, distance), so that ties can be resolved on the id string later.
    """
    cap = o_score.shape[0]
    nex = excl.shape[0]
    rpm = pol[3]
    for p in range(p0, p1):
        dx = p_xyz[p, 0] - qx
        dy = p_xyz[p, 1] - qy
        dz = p_xyz[p, 2] - qz
        lbd = R_KM * math.sqrt(dx * dx + dy * dy + dz * dz) - PREFILTER_MARGIN_KM
        if lbd > max_km:
            continue
        full = count >= k
        if full and lbd - maxb > o_score[k - 1] + SCORE_EPS:
            continue
        lb = pol[p_i[p, 1]]
        rr = rpm * (p_f[p, 2] - 4.0)
        if full and lbd - lb - rr > o_score[k - 1] + SCORE_EPS:
            continue
        # exact contract haversine
        p2 = p_f[p, 0] * DEG2RAD
        s1 = math.sin((p2 - qlat * DEG2RAD) * 0.5)
        s2 = math.sin(((p_f[p, 1] - qlon) * DEG2RAD) * 0.5)
        a = s1 * s1 + cosq * math.cos(p2) * s2 * s2
        if a > 1.0:
            a = 1.0
        d = 2.0 * R_KM * math.asin(math.sqrt(a))
        if d > max_km:
            continue
        sc = d - lb - rr
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


@_jit
def _finalize(count: int, o_f: F64, o_i: I64, m_id: I64, m_b: I8, o_hex: U8) -> bool:
    """Write canonical UUID text (kind 0) or side keys (kind 1, in ``o_i[1]``).

    Returns True when an entry with a non-UUID id is tied with a neighbour on
    (score, distance): the caller must then order that tie by the id string.
    """
    need_sort = False
    for i in range(count):
        s = o_i[0, i]
        if m_b[s, 3] == 0:
            o_i[1, i] = -1
            pos = 35
            for w in range(1, -1, -1):
                v = np.uint64(m_id[s, w]) ^ TOP_BIT
                for _ in range(16):
                    if pos == 8 or pos == 13 or pos == 18 or pos == 23:
                        o_hex[i, pos] = 45  # '-'
                        pos -= 1
                    o_hex[i, pos] = HEX[int(v & np.uint64(15))]
                    v >>= np.uint64(4)
                    pos -= 1
        else:
            o_i[1, i] = m_id[s, 1]
            for c in range(36):
                o_hex[i, c] = 63  # '?' placeholder, replaced in Python
            if i > 0 and o_f[0, i] == o_f[0, i - 1] and o_f[1, i] == o_f[1, i - 1]:
                need_sort = True
            if i + 1 < count and o_f[0, i] == o_f[0, i + 1] and o_f[1, i] == o_f[1, i + 1]:
                need_sort = True
    return need_sort


@_jit
def _qsetup(qlat: float, qlon: float) -> tuple[float, float, float, float]:
    la = qlat * DEG2RAD
    lo = qlon * DEG2RAD
    cl = math.cos(la)
    return cl * math.cos(lo), cl * math.sin(lo), math.sin(la), cl


@_jit
def k_query_rings(
    bt: I64, p_xyz: F32, p_f: F64, p_i: I32, m_id: I64, m_b: I8,
    s_cnt: I64, s_maxb: F64, pol: F64,
    disk: U64, ringlb: F64, pent: F64, fpar: F64, ipar: I64, excl: I64,
    o_f: F64, o_i: I64, o_hex: U8, io: I64,
) -> int:  # fmt: skip
    """Walk rings ipar[2]..ipar[3] of ``disk`` (ring-ordered ``grid_disk`` output).

    fpar = [qlat, qlon, max_km, pentagon chord]; ipar = [spec, k, r_from, r_to];
    io = [count, seen, need_sort] persists between calls.  Returns Q_DONE,
    Q_MORE (the disk is exhausted but the bound does not allow stopping),
    Q_OVERFLOW (too many exact ties for the buffer) or Q_BRUTE (near a pentagon).
    """
    qlat = fpar[0]
    qlon = fpar[1]
    max_km = fpar[2]
    spec = ipar[0]
    k = ipar[1]
    r_from = ipar[2]
    r_to = ipar[3]
    qx, qy, qz, cosq = _qsetup(qlat, qlon)
    if r_from == 0:
        pc2 = fpar[3] * fpar[3]
        for i in range(pent.shape[0]):
            dx = pent[i, 0] - qx
            dy = pent[i, 1] - qy
            dz = pent[i, 2] - qz
            if dx * dx + dy * dy + dz * dz < pc2:
                return Q_BRUTE
    o_score = o_f[0]
    o_dist = o_f[1]
    o_slot = o_i[0]
    maxb = s_maxb[spec]
    total = s_cnt[spec]
    count = int(io[0])
    seen = int(io[1])
    shift = np.int64(spec) << SPEC_SHIFT
    done = False
    for r in range(r_from, r_to + 1):
        i0 = 0 if r == 0 else 3 * r * (r - 1) + 1
        i1 = 3 * r * (r + 1) + 1
        for ci in range(i0, i1):
            b, _ = _bucket_find(bt, np.int64(disk[ci]) | shift)
            if b < 0:
                continue
            size = int(bt[b, 2])
            if size == 0:
                continue
            seen += size
            p0 = int(bt[b, 1])
            count = _scan(
                p0, p0 + size, p_xyz, p_f, p_i, m_id, m_b, pol,
                qx, qy, qz, qlat, qlon, cosq, maxb, k, max_km, excl,
                o_score, o_dist, o_slot, count,
            )  # fmt: skip
            if count < 0:
                return Q_OVERFLOW
        nlb = ringlb[r + 1]
        if seen >= total or nlb > max_km:
            done = True
        elif count >= k and nlb - maxb > o_score[k - 1] + SCORE_EPS:
            done = True
        if done:
            break
    io[0] = count
    io[1] = seen
    if not done:
        return Q_MORE
    io[2] = _finalize(count, o_f, o_i, m_id, m_b, o_hex)
    return Q_DONE


@_jit
def k_query_brute(
    bt: I64, p_xyz: F32, p_f: F64, p_i: I32, m_id: I64, m_b: I8, s_maxb: F64, pol: F64,
    fpar: F64, ipar: I64, excl: I64, o_f: F64, o_i: I64, o_hex: U8, io: I64,
) -> int:  # fmt: skip
    """Exact scan of every ONLINE artisan of ``spec`` (no spatial pruning)."""
    qlat = fpar[0]
    qlon = fpar[1]
    max_km = fpar[2]
    spec = ipar[0]
    k = ipar[1]
    qx, qy, qz, cosq = _qsetup(qlat, qlon)
    maxb = s_maxb[spec]
    count = 0
    for b in range(bt.shape[0]):
        key = bt[b, 0]
        if key < 0 or (key >> SPEC_SHIFT) & 7 != spec:
            continue
        size = int(bt[b, 2])
        if size == 0:
            continue
        p0 = int(bt[b, 1])
        count = _scan(
            p0, p0 + size, p_xyz, p_f, p_i, m_id, m_b, pol,
            qx, qy, qz, qlat, qlon, cosq, maxb, k, max_km, excl,
            o_f[0], o_f[1], o_i[0], count,
        )  # fmt: skip
        if count < 0:
            return Q_OVERFLOW
    io[0] = count
    io[2] = _finalize(count, o_f, o_i, m_id, m_b, o_hex)
    return Q_DONE


@_jit
def k_naive_scan(
    m_f: F64, m_b: I8, n: int, spec: int, qlat: float, qlon: float, k: int,
    max_km: float, pol: F64, o_score: F64, o_slot: I64,
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
        sc = d - pol[m_b[s, 1]] - pol[3] * (m_f[s, 2] - 4.0)
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


@_jit
def k_parse_uuid_rows(
    codes: npt.NDArray[np.uint32], his: I64, los: I64, ok: npt.NDArray[np.bool_]
) -> None:
    """Vectorised canonical-UUID parsing of a (n, 36) array of UCS-4 code points."""
    for j in range(codes.shape[0]):
        good = True
        hi = np.uint64(0)
        lo = np.uint64(0)
        nib = 0
        for c in range(36):
            ch = codes[j, c]
            if c == 8 or c == 13 or c == 18 or c == 23:
                if ch != 45:
                    good = False
                    break
                continue
            if 48 <= ch <= 57:
                v = ch - 48
            elif 97 <= ch <= 102:
                v = ch - 87
            else:
                good = False
                break
            if nib < 16:
                hi = (hi << np.uint64(4)) | np.uint64(v)
            else:
                lo = (lo << np.uint64(4)) | np.uint64(v)
            nib += 1
        ok[j] = good
        if good:
            his[j] = np.int64(hi ^ TOP_BIT)
            los[j] = np.int64(lo ^ TOP_BIT)
