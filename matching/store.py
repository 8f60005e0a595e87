"""The numpy arrays behind :class:`matching.ArtisanIndex` and their growth.

See :mod:`matching.kernels_store` for the layout.  Arrays are capacity-doubled
(never reallocated per call): kernels report ``NEED_*`` codes, :meth:`Store.grow`
enlarges the array concerned, and the caller retries.
"""

from __future__ import annotations

import ctypes
import mmap
from collections.abc import Callable
from typing import Any

import numpy as np
from numba.core import types as _nb_types

from matching import kernels_ids as _kid
from matching import kernels_query as _kq
from matching import kernels_store as _kst
from matching import kernels_tree as _kt
from matching.codes import LEVEL_CODE, SPECIALTY_CODE, STATUS_CODE
from matching.jit import (
    D_CLS,
    D_LEVELS,
    D_SPECS,
    D_STATUSES,
    DESC_FIELDS,
    DESC_LEN,
    F_MAXB,
    FAST_K_MAX,
    FMETA_LEN,
    HEAP_CAP,
    ID_STRIDE,
    LEAF_RES,
    M_FHEAD,
    M_N,
    M_POOL_USED,
    M_ROOT,
    META_LEN,
    NEED_BUCKETS,
    NEED_MAIN,
    NEED_POOL,
    NODE_COLS,
    TIE_ROOM,
    entry_point,
)
from matching.kernels_tree import RES_SHIFT
from matching.policy import Candidate
from matching.pyobj import pyref
from matching.state import State

# numba dispatchers are opaque to mypy: call them through Any-typed aliases
KID: Any = _kid
KST: Any = _kst
KQ: Any = _kq
KT: Any = _kt
nb_types: Any = _nb_types
#: types of k_upsert's scalar arguments: hi, lo, kind, lat, lon, rating, spec, level, status, cell
_UPSERT_SCALARS: tuple[object, ...] = (0, 0, 0, 0.0, 0.0, 0.0, 0, 0, 0, 0)


_ENTRY_POINTS: dict[str, Callable[..., Any]] = {}


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to trim
        return None


_MALLOC_TRIM = _find_malloc_trim()


def release_free_heap() -> None:
    """Give the C heap's free pages back to the system (glibc ``malloc_trim``).

    Growing arrays step by step (a bulk load) frees many blocks below glibc's mmap
    threshold; the heap keeps them (~40 B per artisan after loading a million)
    unless asked to return them.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def fast_kernel(name: str, dispatcher: Any, *example_args: object) -> Callable[..., Any]:
    """``entry_point`` of ``dispatcher``, resolved once per process."""
    fn = _ENTRY_POINTS.get(name)
    if fn is None:
        fn = _ENTRY_POINTS[name] = entry_point(dispatcher, *example_args)
    return fn


def fast_kernel_sig(name: str, dispatcher: Any, sig: tuple[Any, ...]) -> Callable[..., Any]:
    """The compiled entry point of ``dispatcher`` for the numba types ``sig``."""
    fn = _ENTRY_POINTS.get(name)
    if fn is None:
        fn = _ENTRY_POINTS[name] = dispatcher.compile(sig)
    return fn


def _tree_examples() -> tuple[object, ...]:
    """Arguments with the types k_query_tree is always called with (after the store's)."""
    f64, i64 = np.float64, np.int64
    return (
        np.zeros(0, dtype=i64), np.zeros((2, 1), dtype=f64), np.zeros((2, 1), dtype=i64),
        np.zeros((1, 1), dtype=np.uint8), np.zeros(1, dtype=f64), np.zeros(1, dtype=i64),
        0.0, 0.0, 0.0, 0, 0,
    )  # fmt: skip


HUGE_PAGE = 2 << 20
_MADV_HUGEPAGE: int | None = getattr(mmap, "MADV_HUGEPAGE", None)  # Linux only


def index_array(
    shape: int | tuple[int, int],
    dtype: type[np.generic],
    fill: float = 0,
    *,
    huge: bool = False,
) -> Any:
    """An array of the index, filled with ``fill``, 64-byte aligned (no row straddles
    two cache lines; numpy aligns to 16 bytes).

    ``huge`` (the pool and the node table: what a query reads) puts an array of 2 MiB
    or more on its own anonymous mapping, aligned to 2 MiB and advised for
    transparent huge pages. A query reads a few hundred scattered lines of these;
    after other work each also misses the TLB, and on a virtual machine a 4 KiB page
    walk is itself a chain of cache misses: cold queries ~20 % faster. numpy advises
    huge pages for its own large arrays, but glibc serves them from its heap,
    unaligned. Pages never written stay unmapped either way (a zero fill writes
    nothing), but a huge page is resident whole: the rows ranked per answer (ids,
    levels) stay on small pages, so that the whole index costs at most ~1 B more
    per artisan."""
    rows, cols = (shape, 1) if isinstance(shape, int) else shape
    nbytes = rows * cols * np.dtype(dtype).itemsize
    if huge and nbytes >= HUGE_PAGE:
        size = -(-nbytes // HUGE_PAGE) * HUGE_PAGE + HUGE_PAGE
        mapping = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        raw = np.frombuffer(mapping, dtype=np.uint8)  # keeps the mapping alive
        off = -int(raw.ctypes.data) % HUGE_PAGE
        if _MADV_HUGEPAGE is not None:
            mapping.madvise(_MADV_HUGEPAGE, off, size - off)
    else:
        raw = np.zeros(nbytes + 64, dtype=np.uint8)  # calloc: untouched pages unmapped
        off = -int(raw.ctypes.data) % 64
    out = raw[off : off + nbytes].view(dtype).reshape(shape)
    if fill != 0:
        out.fill(fill)
    return out


def node_table(rows: int) -> tuple[Any, Any]:
    """The node table's two views of the same rows: ``bt`` (int64, ``rows`` x NODE_COLS;
    key -1 marks a free row) and ``bb`` (float32, the box and bonus from column BB_LO).

    A node's key and its box share one 64-byte line, so that reading a node (the query
    reads a few hundred, scattered) is one cache miss, not two."""
    bt = index_array((rows, NODE_COLS), np.int64, -1, huge=True)
    bt[:, NODE_COLS // 2 :] = 0  # the bb half: a zero box, not the NaNs of -1
    return bt, bt.view(np.float32)


def pow2_at_least(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


class Store:
    """Owns every array; ``mut`` is the argument tuple shared by the mutation kernels."""

    def __init__(self, policy_row: list[float], capacity: int) -> None:
        cap = pow2_at_least(max(16, capacity))
        self.m_f = index_array((cap, 3), np.float64)
        self.m_id = index_array((cap, 2), np.int64)
        self.m_i = index_array((cap, 2), np.int32, -1)
        self.m_b = index_array((cap, 4), np.int8)
        self.htab = index_array(2 * cap, np.int32, -1)
        pcap = max(64, cap // 2)
        self.p_hot = index_array((pcap, 4), np.float32, huge=True)
        self.p_f = index_array((pcap, 3), np.float64, huge=True)
        self.p_i = index_array((pcap, 2), np.int32, -1, huge=True)
        self.bt, self.bb = node_table(256)
        self.meta = np.zeros(META_LEN, dtype=np.int64)
        self.meta[M_FHEAD:M_ROOT] = -1
        self.fmeta = np.full(FMETA_LEN, -np.inf, dtype=np.float64)
        self.fmeta[:F_MAXB] = policy_row
        # k_query_fast's buffers: results (score, distance; slot), id gather, id text, heap
        cap = FAST_K_MAX + TIE_ROOM
        self.q_f = np.empty((2, cap), dtype=np.float64)
        self.q_i = np.empty((2, cap), dtype=np.int64)
        self.q_w = np.empty((cap, 3), dtype=np.int64)
        self.q_hex = np.empty((cap, ID_STRIDE), dtype=np.uint8)
        self.hk = np.empty(HEAP_CAP, dtype=np.float64)
        self.hv = np.empty(HEAP_CAP, dtype=np.int64)
        self.q_excl = np.zeros(0, dtype=np.int64)
        #: the hot kernels' only array argument, as an address (see :meth:`pack`):
        #: the same array for the store's life, rewritten when an array is replaced
        self.desc = np.zeros(DESC_LEN, dtype=np.int64)
        self.desc_addr = int(self.desc.ctypes.data)
        self.pack()
        #: the hot single-row upsert, called without numba's type dispatch
        self.k_upsert = fast_kernel("k_upsert", KST.k_upsert, 0, *_UPSERT_SCALARS)
        #: the common upsert on the caller's objects (see ArtisanIndex.upsert)
        i64 = nb_types.int64
        self.k_upsert_obj = fast_kernel_sig(
            "k_upsert_obj", KST.k_upsert_obj, (i64, *[pyref] * 7, i64)
        )
        #: the tree-search query kernel, likewise (see walk.run for the argument list)
        self.k_query_tree = fast_kernel(
            "k_query_tree", KQ.k_query_tree, self.state, *_tree_examples()
        )
        #: the common query (no exclusions, small k): State and five scalars
        self.k_query_fast = fast_kernel_sig(
            "k_query_fast", KQ.k_query_fast, (nb_types.int64, *[pyref] * 5)
        )

    def pack(self) -> None:
        """Rebuild the kernel arguments (tuple and State) after any array was replaced."""
        self.mut: tuple[Any, ...] = (
            self.m_f, self.m_id, self.m_i, self.m_b, self.htab,
            self.p_hot, self.p_f, self.p_i, self.bt, self.bb, self.meta, self.fmeta,
        )  # fmt: skip
        self.state = State(*self.mut, self.q_f, self.q_i, self.q_w, self.hk, self.hv, self.q_excl)
        # k_query_fast's only array argument, as an address: per array (data
        # address, rows, columns); the arrays stay alive as this store's attributes
        desc = self.desc
        for j, name in enumerate(DESC_FIELDS):
            a = getattr(self, name)
            desc[3 * j : 3 * j + 3] = (a.ctypes.data, a.shape[0], a.shape[1] if a.ndim > 1 else 1)
        # module globals, alive as long as the kernels: the class the query's answer
        # is made of, the codes the kernels read their str arguments with
        desc[D_CLS] = id(Candidate)
        desc[D_SPECS] = id(SPECIALTY_CODE)
        desc[D_LEVELS] = id(LEVEL_CODE)
        desc[D_STATUSES] = id(STATUS_CODE)

    @property
    def n(self) -> int:
        return int(self.meta[M_N])

    def arrays(self) -> tuple[Any, ...]:
        return self.mut

    # ------------------------------------------------------------------ growth

    def grow_main(self, needed: int) -> None:
        """Room for ``needed`` artisans; the kernel arguments are rebuilt only if an
        array was replaced (:meth:`pack` costs tens of µs, every bulk upsert asks)."""
        cap = self.m_f.shape[0]
        n = self.n
        grown = False
        if needed > cap:
            ncap = pow2_at_least(needed)
            for name in ("m_f", "m_id", "m_i", "m_b"):
                old = getattr(self, name)
                new = index_array((ncap, old.shape[1]), old.dtype)
                new[:n] = old[:n]
                setattr(self, name, new)
            grown = True
        tcap = pow2_at_least(2 * needed)
        if tcap > self.htab.shape[0]:
            self.htab = index_array(tcap, np.int32)
            KID.k_rehash_ids(self.htab, self.m_id, self.m_b, n)
            grown = True
        if grown:
            self.pack()

    def _grow_pool(self) -> None:
        used = int(self.meta[M_POOL_USED])
        ncap = max(self.p_i.shape[0] + self.p_i.shape[0] // 4, 64)
        for name in ("p_hot", "p_f", "p_i"):
            old = getattr(self, name)
            new = index_array((ncap, old.shape[1]), old.dtype, huge=True)
            new[:used] = old[:used]
            setattr(self, name, new)
        self.pack()

    def _grow_buckets(self) -> None:
        new_bt, new_bb = node_table(2 * self.bt.shape[0])
        KST.k_rehash_buckets(new_bt, self.bt, self.p_i, self.m_i)
        self.bt, self.bb = new_bt, new_bb
        self.pack()

    def grow(self, code: int) -> None:
        """Enlarge what a kernel's ``NEED_*`` code asks for."""
        if code == NEED_MAIN:
            self.grow_main(2 * self.m_f.shape[0])
        elif code == NEED_POOL:
            self._grow_pool()
        elif code == NEED_BUCKETS:
            self._grow_buckets()
        else:  # pragma: no cover
            raise RuntimeError(f"unexpected kernel code {code}")

    def compact(self) -> None:
        """Repack the pool bucket by bucket (drops free blocks and slack), tighten boxes."""
        bt = self.bt
        leaf = (bt[:, 0] >= 0) & (((bt[:, 0] >> RES_SHIFT) & 15) == LEAF_RES)
        sizes = np.where(leaf, bt[:, 2], 0)
        cls = np.where(sizes > 0, np.ceil(np.log2(np.maximum(sizes, 1))).astype(np.int64), -1)
        caps = np.where(cls >= 0, np.left_shift(1, np.maximum(cls, 0)), 0)
        total = int(caps.sum())
        pcap = max(64, total + total // 8)
        n_hot = index_array((pcap, 4), np.float32, huge=True)
        n_f = index_array((pcap, 3), np.float64, huge=True)
        n_i = index_array((pcap, 2), np.int32, -1, huge=True)
        starts = np.concatenate(([0], np.cumsum(caps)[:-1])).astype(np.int64)
        KST.k_compact(
            bt, self.bb, cls, starts, self.m_i, self.p_hot, self.p_f, self.p_i, n_hot, n_f, n_i
        )
        KT.k_tree_rebuild(bt, self.bb)
        self.p_hot, self.p_f, self.p_i = n_hot, n_f, n_i
        self.meta[M_FHEAD:M_ROOT] = -1
        self.meta[M_POOL_USED] = total
        self.pack()

    def nbytes(self) -> int:
        bufs = (self.q_f, self.q_i, self.q_w, self.q_hex, self.hk, self.hv)
        # bb is a view of bt's rows: counted once
        return sum(int(a.nbytes) for a in (*self.mut, *bufs) if a is not self.bb)
