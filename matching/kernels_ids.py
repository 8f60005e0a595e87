# numba kernels mix Python ints with numpy scalars (np.int64/np.uint64 steer numba's
# typing); mypy cannot model that, so these codes are relaxed here only.
# mypy: disable-error-code="return-value,no-any-return,assignment,arg-type"
"""Id -> slot hash table (open addressing, linear probing) and bulk UUID parsing."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from matching.jit import I8, I32, I64, TOP_BIT, jit, mix64


@jit
def id_home(hi: int, lo: int, kind: int, mask: int) -> np.int64:
    h = mix64(np.uint64(hi) ^ mix64(np.uint64(lo) + np.uint64(kind)))
    return np.int64(h & np.uint64(mask))


@jit
def id_find(htab: I32, m_id: I64, m_b: I8, hi: int, lo: int, kind: int) -> tuple[int, int]:
    """Return (slot, table position); slot is -1 if absent (position is then empty)."""
    mask = htab.shape[0] - 1
    i = id_home(hi, lo, kind, mask)
    while True:
        s = htab[i]
        if s < 0:
            return -1, i
        if m_id[s, 0] == hi and m_id[s, 1] == lo and m_b[s, 3] == kind:
            return s, i
        i = (i + 1) & mask


@jit
def id_delete_at(htab: I32, i: int, m_id: I64, m_b: I8) -> None:
    """Backward-shift deletion (linear probing, no tombstones)."""
    mask = htab.shape[0] - 1
    j = i
    while True:
        j = (j + 1) & mask
        s = htab[j]
        if s < 0:
            break
        h = id_home(m_id[s, 0], m_id[s, 1], m_b[s, 3], mask)
        # keep s at j iff its home lies cyclically in (i, j]
        if i <= j:
            stays = i < h <= j
        else:
            stays = h > i or h <= j
        if not stays:
            htab[i] = s
            i = j
    htab[i] = -1


@jit
def k_rehash_ids(htab: I32, m_id: I64, m_b: I8, n: int) -> None:
    htab[:] = -1
    mask = htab.shape[0] - 1
    for s in range(n):
        i = id_home(m_id[s, 0], m_id[s, 1], m_b[s, 3], mask)
        while htab[i] >= 0:
            i = (i + 1) & mask
        htab[i] = s


@jit
def k_lookup(htab: I32, m_id: I64, m_b: I8, hi: int, lo: int, kind: int) -> int:
    return id_find(htab, m_id, m_b, hi, lo, kind)[0]


@jit
def uuid_words(chars: Any) -> tuple[bool, int, int]:
    """(ok, hi, lo) of a canonical (lowercase) UUID's 36 code points, any integer array:
    its two 64-bit halves with the top bit flipped, as the id table stores them."""
    hi = np.uint64(0)
    lo = np.uint64(0)
    nib = 0
    for c in range(36):
        ch = chars[c]
        if c == 8 or c == 13 or c == 18 or c == 23:
            if ch != 45:
                return False, 0, 0
            continue
        if 48 <= ch <= 57:
            v = ch - 48
        elif 97 <= ch <= 102:
            v = ch - 87
        else:
            return False, 0, 0
        if nib < 16:
            hi = (hi << np.uint64(4)) | np.uint64(v)
        else:
            lo = (lo << np.uint64(4)) | np.uint64(v)
        nib += 1
    return True, np.int64(hi ^ TOP_BIT), np.int64(lo ^ TOP_BIT)


@jit
def k_parse_uuid_rows(
    codes: npt.NDArray[np.uint32], his: I64, los: I64, ok: npt.NDArray[np.bool_]
) -> None:
    """Vectorised canonical-UUID parsing of a (n, 36) array of UCS-4 code points."""
    for j in range(codes.shape[0]):
        good, hi, lo = uuid_words(codes[j])
        ok[j] = good
        if good:
            his[j] = hi
            los[j] = lo
