# numba kernels mix Python ints with numpy scalars (np.int64/np.uint64 steer numba's
# typing); mypy cannot model that, so these codes are relaxed here only.
# mypy: disable-error-code="return-value,no-any-return,assignment,arg-type"
"""The bucket table and the tree of bounding boxes over it.

Every row of ``bt`` is a node keyed by ``H3 cell | specialty << SPEC_SHIFT``:

* a **leaf** is a resolution-``LEAF_RES`` cell: ``bt`` row (key, pool block start,
  size, size class); its members are one contiguous pool block;
* an **inner node** is an ancestor cell (resolutions 0 to ``LEAF_RES - 1``):
  ``bt`` row (key, -1, ONLINE members below it, bit mask of the child digits that
  have a row).  H3 parents and children are bit operations on the index, so the
  tree costs no ``h3`` call: the query starts at the resolution-0 cells that have
  members (``meta[M_ROOT + spec * N_BASE + base cell]`` counts them).

``bb`` holds, per row, the float32 bounding box (min xyz from column ``BB_LO``, max
xyz from ``BB_HI``) of the members' unit vectors and in column ``BB_MAXB`` the largest
member bonus (float32, rounded up); it is a float32 view of ``bt``'s own rows (their
second half), so a row is one cache line (:func:`matching.store.node_table`).  A
leaf's grow as members move inside it and are recomputed from its block whenever a
member leaves; an inner node's only grow while it has members (reset when it
empties, recomputed by ``compact``).  An ancestor's box and bonus always
cover its descendants'.  A node's box gives a
lower bound on the distance of every member below it and its bonus an upper bound
on their bonus, hence a lower bound on their scores: that is what the query's
best-first search prunes with (:func:`matching.kernels_query.k_query_tree`).
"""

from __future__ import annotations

import numpy as np

from matching.jit import (
    BB_HI,
    BB_LO,
    BB_MAXB,
    F32,
    I64,
    LEAF_RES,
    M_ROOT,
    N_BASE,
    SPEC_SHIFT,
    jit,
    mix64,
    prefetch,
)

RES_SHIFT = 52
_BASE_SHIFT = 45
_RES_MASK = np.int64(15) << RES_SHIFT
#: H3 cell mode (1) in bits 59-62: the resolution-0 cell of base ``b`` is
#: ``_MODE_CELL | b << 45 | (1 << 45) - 1`` (all 15 digits 7 = unused)
_MODE_CELL = np.int64(1) << 59


@jit
def bucket_find(bt: I64, key: int) -> tuple[int, int]:
    """Return (row, -1) if ``key`` is in the bucket table, else (-1, empty row)."""
    mask = bt.shape[0] - 1
    i = np.int64(mix64(np.uint64(key)) & np.uint64(mask))
    while True:
        kk = bt[i, 0]
        if kk < 0:
            return -1, i
        if kk == key:
            return i, -1
        i = (i + 1) & mask


@jit
def prefetch_row(bt: I64, key: int) -> None:
    """Start reading the home row of ``key`` (its ``bt`` and ``bb``: one line; a hint only)."""
    h = np.int64(mix64(np.uint64(key)) & np.uint64(bt.shape[0] - 1))
    prefetch(bt, h * bt.strides[0])


@jit
def prefetch_path(bt: I64, key: int) -> None:
    """Start reading the rows of leaf ``key`` and of its ancestors: their keys are bit
    operations on it, so the random reads of a walk up the tree overlap."""
    prefetch_row(bt, key)
    for res in range(LEAF_RES - 1, -1, -1):
        prefetch_row(bt, parent_key(key, res))


@jit
def is_leaf(key: int) -> bool:
    return (key >> RES_SHIFT) & 15 == LEAF_RES


@jit
def parent_key(key: int, res: int) -> int:
    """The key of the resolution-``res`` ancestor (same specialty bits)."""
    unused = (np.int64(1) << (3 * (15 - res))) - 1  # digits res+1..15 set to 7
    return (key & ~_RES_MASK) | (np.int64(res) << RES_SHIFT) | unused


@jit
def child_key(key: int, res: int, digit: int) -> int:
    """The key of the child ``digit`` (0-6) of the resolution-``res`` node ``key``."""
    shift = 3 * (15 - (res + 1))
    k = (key & ~_RES_MASK) | (np.int64(res + 1) << RES_SHIFT)
    return (k & ~(np.int64(7) << shift)) | (np.int64(digit) << shift)


@jit
def root_key(base: int, spec: int) -> int:
    return (
        _MODE_CELL
        | (np.int64(base) << _BASE_SHIFT)
        | ((np.int64(1) << _BASE_SHIFT) - 1)
        | (np.int64(spec) << SPEC_SHIFT)
    )


@jit
def _digit(key: int, res: int) -> int:
    return (key >> (3 * (15 - res))) & 7


@jit
def box_reset(bb: F32, b: int) -> None:
    for c in range(3):
        bb[b, BB_LO + c] = np.inf
        bb[b, BB_HI + c] = -np.inf
    bb[b, BB_MAXB] = -np.inf


@jit
def box_add(bb: F32, b: int, p: int, p_hot: F32) -> None:
    """Grow row ``b``'s box and bonus to cover pool entry ``p``."""
    for c in range(3):
        v = p_hot[p, c]
        if v < bb[b, BB_LO + c]:
            bb[b, BB_LO + c] = v
        if v > bb[b, BB_HI + c]:
            bb[b, BB_HI + c] = v
    if p_hot[p, 3] > bb[b, BB_MAXB]:
        bb[b, BB_MAXB] = p_hot[p, 3]


@jit
def _cover(bb: F32, a: int, b: int) -> bool:
    """Grow row ``a``'s box and bonus to cover row ``b``'s; False if it already did."""
    grew = False
    for c in range(3):
        if bb[b, BB_LO + c] < bb[a, BB_LO + c]:
            bb[a, BB_LO + c] = bb[b, BB_LO + c]
            grew = True
        if bb[b, BB_HI + c] > bb[a, BB_HI + c]:
            bb[a, BB_HI + c] = bb[b, BB_HI + c]
            grew = True
    if bb[b, BB_MAXB] > bb[a, BB_MAXB]:
        bb[a, BB_MAXB] = bb[b, BB_MAXB]
        grew = True
    return grew


@jit
def tree_grow(bt: I64, bb: F32, leaf: int) -> None:
    """Make the ancestors of ``leaf`` cover its box again (stops where nothing changes)."""
    key = bt[leaf, 0]
    child = leaf
    for res in range(LEAF_RES - 1, -1, -1):
        node, _ = bucket_find(bt, parent_key(key, res))
        if not _cover(bb, node, child):
            return
        child = node


@jit
def tree_rows_needed(bt: I64, key: int) -> int:
    """How many rows adding a first member under leaf ``key`` creates (leaf included)."""
    need = 1
    for res in range(LEAF_RES - 1, -1, -1):
        node, _ = bucket_find(bt, parent_key(key, res))
        if node >= 0:
            return need
        need += 1
    return need


@jit
def tree_add(bt: I64, bb: F32, meta: I64, key: int, delta: int) -> int:
    """Add ``delta`` members under leaf ``key`` to every ancestor's count (creating
    missing ancestors, whose boxes start empty); returns the rows created."""
    created = 0
    child_digit = _digit(key, LEAF_RES)
    for res in range(LEAF_RES - 1, -1, -1):
        pk = parent_key(key, res)
        node, empty = bucket_find(bt, pk)
        if node < 0:
            node = empty
            bt[node, 0] = pk
            bt[node, 1] = -1
            bt[node, 2] = 0
            bt[node, 3] = 0
            box_reset(bb, node)
            created += 1
        bt[node, 3] |= np.int64(1) << child_digit
        bt[node, 2] += delta
        if bt[node, 2] == 0:
            box_reset(bb, node)
        child_digit = _digit(key, res)
    base = (key >> _BASE_SHIFT) & 127
    spec = (key >> SPEC_SHIFT) & 7
    meta[M_ROOT + spec * N_BASE + base] += delta
    return created


@jit
def k_tree_rebuild(bt: I64, bb: F32) -> None:
    """Recompute every inner node's box and bonus from the leaves (tightest boxes)."""
    for b in range(bt.shape[0]):
        if bt[b, 0] >= 0 and not is_leaf(bt[b, 0]):
            box_reset(bb, b)
    for b in range(bt.shape[0]):
        if bt[b, 0] >= 0 and is_leaf(bt[b, 0]) and bt[b, 2] > 0:
            key = bt[b, 0]
            child = b
            for res in range(LEAF_RES - 1, -1, -1):
                node, _ = bucket_find(bt, parent_key(key, res))
                _cover(bb, node, child)
                child = node
