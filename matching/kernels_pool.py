# numba kernels mix Python ints with numpy scalars (np.int64/np.uint64 steer numba's
# typing); mypy cannot model that, so these codes are relaxed here only.
# mypy: disable-error-code="return-value,no-any-return,assignment,arg-type"
"""Pool blocks: each bucket's members in one power-of-two block of the pool, ordered by
bonus band, largest first (:mod:`matching.kernels_store` owns the layout).

Blocks of each size class are allocated from the pool's end or from that class's free
list (threaded through ``p_i[start, 0]``); an entry joins or leaves a block with one
entry move per band, not per entry.
"""

from __future__ import annotations

from matching.jit import F32, F64, I32, I64, M_FHEAD, M_POOL_USED, bonus_band, jit


@jit
def can_alloc(cls: int, meta: I64, p_i: I32) -> bool:
    return meta[M_FHEAD + cls] >= 0 or meta[M_POOL_USED] + (1 << cls) <= p_i.shape[0]


@jit
def alloc(cls: int, meta: I64, p_i: I32) -> int:
    s = meta[M_FHEAD + cls]
    if s >= 0:
        meta[M_FHEAD + cls] = p_i[s, 0]
        return int(s)
    s = meta[M_POOL_USED]
    meta[M_POOL_USED] = s + (1 << cls)
    return int(s)


@jit
def free_block(start: int, cls: int, meta: I64, p_i: I32) -> None:
    p_i[start, 0] = meta[M_FHEAD + cls]
    meta[M_FHEAD + cls] = start


@jit
def pool_copy(src: int, dst: int, p_hot: F32, p_f: F64, p_i: I32) -> None:
    for c in range(4):
        p_hot[dst, c] = p_hot[src, c]
    for c in range(3):
        p_f[dst, c] = p_f[src, c]
    p_i[dst, 0] = p_i[src, 0]
    p_i[dst, 1] = p_i[src, 1]


@jit
def block_remove(b: int, pos: int, bt: I64, m_i: I32, p_hot: F32, p_f: F64, p_i: I32) -> None:
    """Drop entry ``pos`` from bucket ``b``'s block, keeping its band order: the hole
    moves to the block's end, taking the last entry of each band region after it."""
    start = int(bt[b, 1])
    size = int(bt[b, 2])
    last = start + size - 1
    hole = pos
    hb = bonus_band(p_hot[pos, 3])
    for i in range(pos + 1, last + 1):
        bi = bonus_band(p_hot[i, 3])
        if bi != hb:  # i starts a new region: the one before ends at i - 1
            if i - 1 != hole:
                pool_copy(i - 1, hole, p_hot, p_f, p_i)
                m_i[p_i[hole, 0], 1] = hole
                hole = i - 1
            hb = bi
    if last != hole:
        pool_copy(last, hole, p_hot, p_f, p_i)
        m_i[p_i[hole, 0], 1] = hole
    bt[b, 2] = size - 1


@jit
def block_insert(b: int, pos: int, bt: I64, m_i: I32, p_hot: F32, p_f: F64, p_i: I32) -> int:
    """Move entry ``pos``, the last of bucket ``b``'s block, into its band's region: each
    region of a later band gives its first entry to the hole, which moves back.  Returns
    the entry's position; a few moves (one per band), not one per entry."""
    start = int(bt[b, 1])
    vb = bonus_band(p_hot[pos, 3])
    h0, h1, h2, h3 = p_hot[pos, 0], p_hot[pos, 1], p_hot[pos, 2], p_hot[pos, 3]
    f0, f1, f2 = p_f[pos, 0], p_f[pos, 1], p_f[pos, 2]
    i0, i1 = p_i[pos, 0], p_i[pos, 1]
    hole = pos
    i = pos - 1
    while i >= start:
        bi = bonus_band(p_hot[i, 3])
        if bi <= vb:
            break
        j = i
        while j > start and bonus_band(p_hot[j - 1, 3]) == bi:
            j -= 1
        pool_copy(j, hole, p_hot, p_f, p_i)  # region j..i shifts to j+1..hole
        m_i[p_i[hole, 0], 1] = hole
        hole = j
        i = j - 1
    if hole != pos:
        p_hot[hole, 0], p_hot[hole, 1], p_hot[hole, 2], p_hot[hole, 3] = h0, h1, h2, h3
        p_f[hole, 0], p_f[hole, 1], p_f[hole, 2] = f0, f1, f2
        p_i[hole, 0], p_i[hole, 1] = i0, i1
    m_i[i0, 1] = hole
    return hole
