"""numba set-up shared by every kernel module: the decorator, array aliases, constants.

All mutable state lives in plain numpy arrays owned by :class:`matching.store.Store`;
the kernels never allocate persistent state, they report ``NEED_*`` codes instead
so that the Python side can grow an array (capacity doubling) and retry.

Every kernel's machine code is cached by numba (in ``__pycache__`` next to its module,
or under ``NUMBA_CACHE_DIR``); :func:`matching.warmup` forces compilation or cache
loading once, at server start-up. numba stamps a cached kernel with its own module's
source only, while the kernels inline code from the others (the C-API builders of
``pyobj``, the constants and helpers here): a change there would leave the old machine
code running. So the stamp here is every source file of the package: any change
recompiles all.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar, cast

import numpy as np
import numpy.typing as npt

try:
    import numba
    from llvmlite import ir
    from numba.core import caching as nb_caching
    from numba.core import cgutils
    from numba.core import types as nb_types
    from numba.extending import intrinsic
except ImportError as exc:  # pragma: no cover - exercised only without numba
    raise ImportError(
        "matching: numba is REQUIRED and could not be imported "
        f"({exc}). Install the pinned version (pip install numba==0.68.1). "
        "There is deliberately no pure-Python fallback: it would be ~1000x slower "
        "and silently break the dispatch latency budget."
    ) from exc

from matching.codes import EARTH_RADIUS_KM, SPECIALTIES

F = TypeVar("F", bound=Callable[..., Any])


@functools.cache
def package_source_stamp() -> str:
    """A digest of every source file of ``matching`` (names and contents)."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


class _PackageStamp:
    """A numba cache locator's stamp: the whole package's source."""

    def get_source_stamp(self) -> str:
        return package_source_stamp()


# numba's own locators, in numba's order: NUMBA_CACHE_DIR when set (the Docker image's,
# its site-packages being read-only), else __pycache__ next to the module, else the
# user's cache directory.
class _UserDirLocator(_PackageStamp, nb_caching.UserProvidedCacheLocator):
    pass


class _InTreeLocator(_PackageStamp, nb_caching.InTreeCacheLocator):
    pass


class _UserWideLocator(_PackageStamp, nb_caching.UserWideCacheLocator):
    pass


class _PackageStampedImpl(nb_caching.CompileResultCacheImpl):
    _locator_classes = [_UserDirLocator, _InTreeLocator, _UserWideLocator]  # noqa: RUF012


class _PackageStampedCache(nb_caching.FunctionCache):
    _impl_class = _PackageStampedImpl


def jit(fn: F) -> F:
    """``numba.njit`` with its machine code cached under the package's source stamp
    (module docstring), the wrapped function's type kept for mypy."""
    dispatcher = numba.njit(fn)
    dispatcher._cache = _PackageStampedCache(fn)  # type: ignore[no-untyped-call]  # as cache=True
    return cast(F, dispatcher)


F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
I8 = npt.NDArray[np.int8]
U8 = npt.NDArray[np.uint8]
U64 = npt.NDArray[np.uint64]

R_KM: Final = EARTH_RADIUS_KM
DEG2RAD: Final = math.pi / 180.0
#: Slack (km) for float32 unit vectors (prefilter and bucket boxes; float32 error < 2 m).
PREFILTER_MARGIN_KM: Final = 0.005
#: Slack on score comparisons used only to *skip* work (never to accept).
SCORE_EPS: Final = 1e-9

N_SPEC: Final = len(SPECIALTIES)
# meta[] (int64) layout: counters, ONLINE count per specialty, pool free-list heads
M_N: Final = 0
M_POOL_USED: Final = 1
M_NBUCKETS: Final = 2
M_CNT: Final = 3
M_FHEAD: Final = M_CNT + N_SPEC
N_SIZE_CLASSES: Final = 40
#: H3 resolution of the leaves (the buckets holding members); see matching.geometry
LEAF_RES: Final = 8
#: H3 base cells (resolution-0 roots)
N_BASE: Final = 122
#: ONLINE members per (specialty, base cell): the roots the query starts from
M_ROOT: Final = M_FHEAD + N_SIZE_CLASSES
META_LEN: Final = M_ROOT + N_SPEC * N_BASE
#: A node's row is one 64-byte line: ``bt`` (int64, columns 0-3: key, block start, size,
#: mask) and ``bb`` (float32, the same memory) in its second half: the box's min xyz
#: from column BB_LO, max xyz from BB_HI, the largest member bonus in BB_MAXB
NODE_COLS: Final = 8  # int64 columns of a row: 4 for bt, 4 holding bb
BB_LO: Final = 8
BB_HI: Final = 11
BB_MAXB: Final = 14
# fmeta[] (float64) layout: policy (bonus per level code, km per star), max bonus per specialty
F_RPM: Final = 3
F_MAXB: Final = 4
FMETA_LEN: Final = F_MAXB + N_SPEC

# mutation return codes
OK: Final = 0
NEED_MAIN: Final = 1
NEED_POOL: Final = 2
NEED_BUCKETS: Final = 3
#: k_upsert_obj only: the arguments need the general path (validation, non-UUID id)
UP_SLOW: Final = 4

# query return codes
Q_DONE: Final = 0
Q_MORE: Final = 1
Q_OVERFLOW: Final = 2
Q_BRUTE: Final = 3
# query result flags
FLAG_NEED_SORT: Final = 1
FLAG_SIDE_IDS: Final = 2

#: nodes the tree search may keep open at once; beyond it the query falls back to
#: the exact brute-force kernel (never reached by k <= 100 in a dense city)
HEAP_CAP: Final = 1 << 14
#: k_query_fast's buffers hold k + TIE_ROOM entries for k <= FAST_K_MAX
TIE_ROOM: Final = 32
FAST_K_MAX: Final = 64

SPEC_SHIFT: Final = 56  # H3 cell bits 56-58 are always zero: the specialty goes there
#: bytes per id in the query's text output: 36 UUID characters and a ',' separator
ID_STRIDE: Final = 37
HEX: Final = np.frombuffer(b"0123456789abcdef", dtype=np.uint8).copy()
TOP_BIT: Final = np.uint64(1 << 63)
F32_BIG: Final = 3.0e38


def entry_point(dispatcher: Any, *example_args: object) -> Callable[..., Any]:
    """The compiled entry point of ``dispatcher`` for the types of ``example_args``.

    ``Dispatcher.compile`` returns the machine-code wrapper for one signature
    (loaded from the on-disk cache when present).  Calling it directly skips
    numba's per-call type resolution (~0.25 µs on a 20-argument kernel); the
    callers guarantee that every later call uses exactly these types (arrays are
    allocated by :class:`matching.store.Store` with fixed dtypes, scalars are
    Python ints/floats).
    """
    typeof: Any = numba.typeof  # untyped in numba
    sig = tuple(typeof(a) for a in example_args)
    return cast(Callable[..., Any], dispatcher.compile(sig))


@jit
def mix64(x: np.uint64) -> np.uint64:
    """SplitMix-style finaliser used by both hash tables."""
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xC4CEB9FE1A85EC53)
    x ^= x >> np.uint64(33)
    return x


_get_or_insert_function: Any = cgutils.get_or_insert_function  # untyped in numba


def _prefetch_codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
    i8p = ir.IntType(8).as_pointer()
    ary = context.make_array(sig.args[0])(context, builder, args[0])
    base = builder.ptrtoint(ary.data, ir.IntType(64))
    addr = builder.inttoptr(builder.add(base, args[1]), i8p)
    i32 = ir.IntType(32)
    fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
    fn = _get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
    # read, keep in every cache level, data cache
    builder.call(fn, [addr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
    return context.get_dummy_value()


def _prefetch_typer(typingctx: Any, arr: Any, offset: Any) -> Any:
    if not isinstance(arr, nb_types.Array) or offset != nb_types.int64:
        return None
    return nb_types.void(arr, offset), _prefetch_codegen


#: ``prefetch(arr, byte_offset)``: a hint to load the cache line of ``arr``'s data at
#: ``byte_offset`` (int64).  A hint only: it never faults, whatever the address.
prefetch: Any = intrinsic(_prefetch_typer)


@jit
def prefetch_rows(arr: Any, row: int, count: int) -> None:
    """Prefetch every cache line of rows ``row..row+count`` of a C-contiguous array."""
    stride = arr.strides[0]
    start = np.int64(row * stride)
    end = np.int64((row + count) * stride)
    for off in range(start - (start & 63), end, 64):
        prefetch(arr, np.int64(off))


def _voidptr_typer(typingctx: Any, src: Any) -> Any:
    if src != nb_types.int64:
        return None

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return nb_types.voidptr(src), codegen


#: ``as_voidptr(address)``: an int64 address as a pointer, for ``numba.carray``
as_voidptr: Any = intrinsic(_voidptr_typer)
#: arrays described by :meth:`matching.store.Store.pack`'s descriptor, in this order
#: (each as data address, rows, columns): the hot kernels (single upsert, query) take
#: its address instead of arrays (see :func:`matching.kernels_query.k_query_fast`)
DESC_FIELDS: Final = (
    "bt", "bb", "p_hot", "p_f", "p_i", "m_id", "m_b", "meta", "fmeta",
    "q_f", "q_i", "q_w", "hk", "hv", "q_excl", "m_f", "m_i", "htab", "q_hex",
)  # fmt: skip
(D_BT, D_BB, D_PHOT, D_PF, D_PI, D_MID, D_MB, D_META, D_FMETA,
 D_QF, D_QI, D_QW, D_HK, D_HV, D_QEXCL, D_MF, D_MI, D_HTAB, D_QHEX) = range(len(DESC_FIELDS))  # fmt: skip
#: the descriptor's last words: the addresses of :class:`matching.policy.Candidate`
#: and of :data:`matching.codes.SPECIALTY_CODE`, ``LEVEL_CODE``, ``STATUS_CODE``
D_CLS: Final = 3 * len(DESC_FIELDS)
D_SPECS: Final = D_CLS + 1
D_LEVELS: Final = D_CLS + 2
D_STATUSES: Final = D_CLS + 3
DESC_LEN: Final = D_CLS + 4
_carray: Any = getattr(numba, "carray")  # noqa: B009 - not re-exported


@jit
def desc_view(desc: int) -> Any:
    """The descriptor at address ``desc`` as an int64 array."""
    return _carray(as_voidptr(desc), (DESC_LEN,), np.int64)


@jit
def arr2(d: Any, j: int, dtype: Any) -> Any:
    """Array ``j`` of a descriptor, 2-d."""
    return _carray(as_voidptr(d[3 * j]), (d[3 * j + 1], d[3 * j + 2]), dtype)


@jit
def arr1(d: Any, j: int, dtype: Any) -> Any:
    """Array ``j`` of a descriptor, 1-d."""
    return _carray(as_voidptr(d[3 * j]), (d[3 * j + 1],), dtype)


#: a leaf block is ordered by bonus band (see :func:`bonus_band`): bands BAND_W km wide
#: below BAND_TOP km, band 0 holding every bonus above, the last every bonus below
BAND_W: Final = 0.25
BAND_TOP: Final = 2.0
N_BANDS: Final = 16


@jit
def bonus_band(v: float) -> int:
    """The band of a (float32, rounded-up) bonus: 0 for the largest bonuses."""
    x = (BAND_TOP - v) / BAND_W
    if not x > 0.0:
        return 0
    if x >= N_BANDS - 1:
        return N_BANDS - 1
    return int(x)


@jit
def band_top(v: float) -> float:
    """An upper bound of every bonus in the band of ``v`` (or in a later band)."""
    j = bonus_band(v)
    if j == 0:
        return math.inf
    return BAND_TOP - j * BAND_W + 1e-6
