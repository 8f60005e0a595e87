# numba kernels mix Python ints with numpy scalars (np.int64/np.uint64 steer numba's
# typing); mypy cannot model that, so these codes are relaxed here only.
# mypy: disable-error-code="return-value,no-any-return,assignment,arg-type"
"""A query's results out of the kernels: canonical UUID text, and for the common query
the final ``list[Candidate]`` built through the C API (:mod:`matching.pyobj`).

Both read the sorted top-k buffer the search kernels fill (:mod:`matching.kernels_query`):
``o_f`` = score, distance rows; ``o_i[0]`` = slots.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from matching.jit import (
    F64,
    FLAG_NEED_SORT,
    FLAG_SIDE_IDS,
    HEX,
    I8,
    I64,
    ID_STRIDE,
    TOP_BIT,
    U8,
    jit,
)
from matching.pyobj import py_candidate, py_decref, py_is_null, py_list_new, py_list_set, py_none


@jit
def _uuid_text(hi: int, lo: int, out: Any) -> None:
    """The canonical UUID text of id words (hi, lo) into ``out[0:36]``."""
    pos = 35
    for wd in range(1, -1, -1):
        v = np.uint64(hi if wd == 0 else lo) ^ TOP_BIT
        for _ in range(16):
            if pos == 8 or pos == 13 or pos == 18 or pos == 23:
                out[pos] = 45  # '-'
                pos -= 1
            out[pos] = HEX[int(v & np.uint64(15))]
            v >>= np.uint64(4)
            pos -= 1


@jit
def finalize(count: int, o_f: F64, o_i: I64, m_id: I64, m_b: I8, o_hex: U8) -> int:
    """Write canonical UUID text (kind 0) or side keys (kind 1, in ``o_i[1]``).

    Each id takes 36 characters and a ',' in ``o_hex``.  Returns FLAG_SIDE_IDS if
    any entry has a non-UUID id, plus FLAG_NEED_SORT if such an entry is tied
    with a neighbour on (score, distance): the caller then orders by the id string.
    """
    # gather first: the k random slot reads are independent, so their cache
    # misses overlap instead of being serialised by the formatting loop
    words = np.empty((count, 3), dtype=np.int64)
    for i in range(count):
        s = o_i[0, i]
        words[i, 0] = m_id[s, 0]
        words[i, 1] = m_id[s, 1]
        words[i, 2] = m_b[s, 3]
    flags = 0
    for i in range(count):
        o_hex[i, 36] = 44  # ','
        if words[i, 2] == 0:
            o_i[1, i] = -1
            _uuid_text(words[i, 0], words[i, 1], o_hex[i])
        else:
            flags |= FLAG_SIDE_IDS
            o_i[1, i] = words[i, 1]
            for c in range(36):
                o_hex[i, c] = 63  # '?' placeholder, replaced in Python
            if i > 0 and o_f[0, i] == o_f[0, i - 1] and o_f[1, i] == o_f[1, i - 1]:
                flags |= FLAG_NEED_SORT
            if i + 1 < count and o_f[0, i] == o_f[0, i + 1] and o_f[1, i] == o_f[1, i + 1]:
                flags |= FLAG_NEED_SORT
    return flags


@jit
def answer(m: int, o_f: F64, o_i: I64, m_id: I64, m_b: I8, w: I64, text: U8, cls: int) -> Any:
    """The ``m`` first results as a new ``list[Candidate]`` (``cls`` is Candidate's
    address); None if any is not a UUID (kind 1: the caller takes the general path),
    NULL on MemoryError."""
    # gather first: the m random slot reads are independent, so their cache
    # misses overlap instead of being serialised by the formatting loop
    for i in range(m):
        s = o_i[0, i]
        w[i, 0] = m_id[s, 0]
        w[i, 1] = m_id[s, 1]
        w[i, 2] = m_b[s, 3]
    for i in range(m):
        if w[i, 2] != 0:
            return py_none()
    for i in range(m):
        _uuid_text(w[i, 0], w[i, 1], text[i])
    out = py_list_new(m)
    if py_is_null(out):
        return out
    for i in range(m):  # candidates come untracked by the cyclic GC (see py_candidate)
        c = py_candidate(cls, text, i * ID_STRIDE, o_f[1, i], o_f[0, i])
        if py_is_null(c):
            py_decref(out)  # and the candidates already in it
            return c
        py_list_set(out, i, c)
    return out
