"""The in-memory columnar artisan index (CONTRACT section 7)."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt
from h3.api import basic_int as _h3
from h3.api import numpy_int as _h3np

from matching import kernels as _kernels
from matching.codes import (
    LEVEL_CODE,
    LEVELS,
    RATING_MAX,
    RATING_MIN,
    SPECIALTIES,
    SPECIALTY_CODE,
    STATUS_CODE,
    STATUSES,
    level_code,
    specialty_code,
    status_code,
)
from matching.geometry import (
    H3_RES,
    MAX_RINGS,
    pentagon_chord_threshold,
    pentagon_unit_vectors,
    ring_lower_bounds,
)
from matching.idmap import KIND_SIDE, KIND_UUID, format_uuid, parse_uuid
from matching.policy import Candidate, RankingPolicy

# the numba dispatchers are opaque to mypy: call them through an Any-typed alias
K: Any = _kernels
_latlng_to_cell = _h3.latlng_to_cell
_grid_disk = _h3np.grid_disk

_RINGLB: Final = ring_lower_bounds()
_PENT: Final = pentagon_unit_vectors()
_PENT_CHORD: Final = pentagon_chord_threshold()
_EMPTY_EXCL: Final = np.zeros(0, dtype=np.int64)
#: first ring-walk radius (rings); doubled while the bound does not allow stopping
_FIRST_RINGS: Final = 3
#: cost of one disk cell relative to one brute-force candidate (used to pick brute force)
_CELL_COST: Final = 8
#: extra room in the result buffer for exact (score, distance) ties
_TIE_ROOM: Final = 32
_REAL = (int, float, np.integer, np.floating)


class ArtisanRecord(NamedTuple):
    """What :meth:`ArtisanIndex.get` returns."""

    artisan_id: str
    lat: float
    lon: float
    specialty: str
    level: str
    rating: float
    status: str


def _real(x: object, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, _REAL):
        raise ValueError(f"{name} must be a real number, got {x!r}")
    return float(x)


def _bad_lat(lat: float) -> ValueError:
    return ValueError(f"lat must be a finite number in [-90, 90], got {lat!r}")


def _bad_lon(lon: float) -> ValueError:
    return ValueError(f"lon must be a finite number in [-180, 180], got {lon!r}")


def _bad_rating(rating: float) -> ValueError:
    return ValueError(f"rating must be a finite number in [0, 5], got {rating!r}")


def _bad_id(artisan_id: object) -> ValueError:
    return ValueError(f"artisan_id must be a non-empty str, got {artisan_id!r}")


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


class ArtisanIndex:
    """Exact top-k ranking of ONLINE artisans, bucketed by (specialty, H3 res-9 cell).

    Storage (all numpy, capacity-doubled, never reallocated per call):

    * per artisan ("slot", swap-removed on :meth:`remove`): lat/lon/rating
      float64, id as two int64 words, (bucket, pool position) int32,
      (specialty, level, status, id kind) int8 -> 52 bytes;
    * id -> slot: open-addressing int32 hash table (linear probing, load <= 1/2);
    * ONLINE artisans only, per (specialty, cell) bucket, in power-of-two blocks
      of a shared pool with per-size free lists (moves are swap-removes between
      buckets): float32 unit vector, float64 lat/lon/rating, int8 level,
      int32 slot -> 41 bytes per pool entry.

    :meth:`query` walks the H3 rings around the job's cell (``grid_disk``,
    ring-ordered) inside a numba kernel and stops once no artisan in a farther
    ring can beat the k-th best score (see :mod:`matching.geometry` for the
    distance bound); it uses an exact brute-force kernel near pentagons and
    when the walk would cost more than scanning the specialty.

    Extra API for the dispatcher: :meth:`get`, :meth:`set_status`,
    ``artisan_id in index``, :meth:`memory_bytes`.

    Not thread-safe: mutate and query from one thread (the event loop).
    """

    def __init__(self, policy: RankingPolicy | None = None, capacity: int = 1024) -> None:
        self.policy: Final = policy if policy is not None else RankingPolicy()
        self._pol = np.append(self.policy.level_bonus_array(), self.policy.rating_km_per_star)
        cap = _pow2_at_least(max(16, capacity))
        self._m_f = np.zeros((cap, 3), dtype=np.float64)
        self._m_id = np.zeros((cap, 2), dtype=np.int64)
        self._m_i = np.full((cap, 2), -1, dtype=np.int32)
        self._m_b = np.zeros((cap, 4), dtype=np.int8)
        self._htab = np.full(2 * cap, -1, dtype=np.int32)
        pcap = max(64, cap // 2)
        self._p_xyz = np.zeros((pcap, 3), dtype=np.float32)
        self._p_f = np.zeros((pcap, 3), dtype=np.float64)
        self._p_i = np.full((pcap, 2), -1, dtype=np.int32)
        self._fhead = np.full(40, -1, dtype=np.int64)
        self._bt = np.full((256, 4), -1, dtype=np.int64)
        self._st = np.zeros(4, dtype=np.int64)
        self._s_cnt = np.zeros(len(SPECIALTIES), dtype=np.int64)
        self._s_maxb = np.full(len(SPECIALTIES), -np.inf, dtype=np.float64)
        self._side_id: dict[str, int] = {}
        self._side_str: dict[int, str] = {}
        self._side_next = 0
        self._bufs: _Buffers | None = None
        self._pack()

    # ------------------------------------------------------------------ internals

    def _pack(self) -> None:
        self._arrs: tuple[Any, ...] = (
            self._m_f, self._m_id, self._m_i, self._m_b, self._htab,
            self._p_xyz, self._p_f, self._p_i, self._fhead, self._bt,
            self._st, self._s_cnt, self._s_maxb, self._pol,
        )  # fmt: skip
        self._mut = self._arrs
        self._qarrs: tuple[Any, ...] = (
            self._bt, self._p_xyz, self._p_f, self._p_i, self._m_id, self._m_b,
            self._s_cnt, self._s_maxb, self._pol,
        )  # fmt: skip

    def _grow_main(self, needed: int) -> None:
        cap = self._m_f.shape[0]
        n = int(self._st[K.ST_N])
        if needed > cap:
            ncap = _pow2_at_least(needed)
            for name in ("_m_f", "_m_id", "_m_i", "_m_b"):
                old = getattr(self, name)
                new = np.empty((ncap, old.shape[1]), dtype=old.dtype)
                new[:n] = old[:n]
                setattr(self, name, new)
        tcap = _pow2_at_least(2 * needed)
        if tcap > self._htab.shape[0]:
            self._htab = np.empty(tcap, dtype=np.int32)
            K.k_rehash_ids(self._htab, self._m_id, self._m_b, n)
        self._pack()

    def _grow_pool(self, needed: int) -> None:
        used = int(self._st[K.ST_POOL_USED])
        ncap = max(needed, self._p_i.shape[0] + self._p_i.shape[0] // 4, 64)
        for name in ("_p_xyz", "_p_f", "_p_i"):
            old = getattr(self, name)
            new = np.empty((ncap, *old.shape[1:]), dtype=old.dtype)
            new[:used] = old[:used]
            setattr(self, name, new)
        self._pack()

    def _grow_buckets(self) -> None:
        new = np.empty((2 * self._bt.shape[0], 4), dtype=np.int64)
        K.k_rehash_buckets(new, self._bt, self._p_i, self._m_i)
        self._bt = new
        self._pack()

    def _grow(self, code: int) -> None:
        if code == K.NEED_MAIN:
            self._grow_main(2 * self._m_f.shape[0])
        elif code == K.NEED_POOL:
            self._grow_pool(0)
        elif code == K.NEED_BUCKETS:
            self._grow_buckets()
        else:  # pragma: no cover
            raise RuntimeError(f"unexpected kernel code {code}")

    def compact(self) -> None:
        """Repack the ONLINE pool (drops free blocks and slack); O(ONLINE artisans).

        :meth:`upsert_many` calls it after a bulk load.  Optional otherwise.
        """
        bt = self._bt
        sizes = np.where(bt[:, 0] >= 0, bt[:, 2], 0)
        cls = np.where(sizes > 0, np.ceil(np.log2(np.maximum(sizes, 1))).astype(np.int64), -1)
        caps = np.where(cls >= 0, np.left_shift(1, np.maximum(cls, 0)), 0)
        total = int(caps.sum())
        pcap = max(64, total + total // 8)
        n_xyz = np.empty((pcap, 3), dtype=np.float32)
        n_f = np.empty((pcap, 3), dtype=np.float64)
        n_i = np.full((pcap, 2), -1, dtype=np.int32)
        starts = np.concatenate(([0], np.cumsum(caps)[:-1])).astype(np.int64)
        _compact_kernel(
            bt, cls, starts, self._m_i, self._p_xyz, self._p_f, self._p_i, n_xyz, n_f, n_i
        )
        self._p_xyz, self._p_f, self._p_i = n_xyz, n_f, n_i
        self._fhead[:] = -1
        self._st[K.ST_POOL_USED] = total
        self._pack()

    def _encode(self, artisan_id: str, create: bool) -> tuple[int, int, int] | None:
        w = parse_uuid(artisan_id)
        if w is not None:
            return w[0], w[1], KIND_UUID
        side = self._side_id.get(artisan_id)
        if side is None:
            if not create:
                return None
            side = self._side_next
            self._side_next += 1
            self._side_id[artisan_id] = side
            self._side_str[side] = artisan_id
        return 0, side, KIND_SIDE

    def _slot(self, artisan_id: object) -> int:
        if type(artisan_id) is not str or not artisan_id:
            raise _bad_id(artisan_id)
        key = self._encode(artisan_id, False)
        if key is None:
            return -1
        return int(K.k_lookup(self._htab, self._m_id, self._m_b, key[0], key[1], key[2]))

    def _id_of_slot(self, slot: int) -> str:
        hi, lo = self._m_id[slot].tolist()
        if int(self._m_b[slot, 3]) == KIND_UUID:
            return format_uuid(hi, lo)
        return self._side_str[lo]

    # ------------------------------------------------------------------ mutation

    def upsert(
        self,
        artisan_id: str,
        lat: float,
        lon: float,
        specialty: str,
        level: str,
        rating: float,
        status: str,
    ) -> None:
        """Insert or update one artisan (O(1) amortised; ~2-3 µs)."""
        if type(artisan_id) is not str or not artisan_id:
            raise _bad_id(artisan_id)
        if type(lat) is not float:
            lat = _real(lat, "lat")
        if not -90.0 <= lat <= 90.0:
            raise _bad_lat(lat)
        if type(lon) is not float:
            lon = _real(lon, "lon")
        if not -180.0 <= lon <= 180.0:
            raise _bad_lon(lon)
        if type(rating) is not float:
            rating = _real(rating, "rating")
        if not RATING_MIN <= rating <= RATING_MAX:
            raise _bad_rating(rating)
        sp = SPECIALTY_CODE.get(specialty) if type(specialty) is str else None
        if sp is None:
            sp = specialty_code(specialty)
        lv = LEVEL_CODE.get(level) if type(level) is str else None
        if lv is None:
            lv = level_code(level)
        stc = STATUS_CODE.get(status) if type(status) is str else None
        if stc is None:
            stc = status_code(status)
        # canonical UUID fast path inlined (see idmap.parse_uuid)
        s = artisan_id
        hi = -1
        if len(s) == 36 and s[8] == "-" and s[13] == "-" and s[18] == "-" and s[23] == "-":
            h = s.replace("-", "")
            try:
                v = int(h, 16)
            except ValueError:
                v = -1
            if v >= 0 and f"{v:032x}" == h:
                hi = (v >> 64) - 9223372036854775808
                lo = (v & 0xFFFFFFFFFFFFFFFF) - 9223372036854775808
                kind = KIND_UUID
        if hi == -1 and (kind_key := self._encode(s, True)) is not None:
            hi, lo, kind = kind_key
        cell = _latlng_to_cell(lat, lon, H3_RES) if stc == 0 else 0
        code = K.k_upsert(*self._mut, hi, lo, kind, lat, lon, rating, sp, lv, stc, cell)
        while code:
            self._grow(code)
            code = K.k_upsert(*self._mut, hi, lo, kind, lat, lon, rating, sp, lv, stc, cell)

    def upsert_many(
        self,
        ids: Sequence[str] | npt.NDArray[Any],
        lats: Sequence[float] | npt.NDArray[Any],
        lons: Sequence[float] | npt.NDArray[Any],
        specialties: Sequence[str] | npt.NDArray[Any],
        levels: Sequence[str] | npt.NDArray[Any],
        ratings: Sequence[float] | npt.NDArray[Any],
        statuses: Sequence[str] | npt.NDArray[Any],
    ) -> None:
        """Bulk upsert (later rows win on duplicate ids).

        Atomic: every row is validated before anything is mutated; one bad row
        raises ``ValueError`` naming the row and leaves the index unchanged.
        """
        n = len(ids)
        cols = (lats, lons, specialties, levels, ratings, statuses)
        if any(len(c) != n for c in cols):
            raise ValueError("upsert_many: all columns must have the same length")
        if n == 0:
            return
        la = _float_column(lats, "lat")
        lo = _float_column(lons, "lon")
        rt = _float_column(ratings, "rating")
        _check_range(la, -90.0, 90.0, "lat")
        _check_range(lo, -180.0, 180.0, "lon")
        _check_range(rt, RATING_MIN, RATING_MAX, "rating")
        sp = _code_column(specialties, SPECIALTY_CODE, SPECIALTIES, "specialty")
        lv = _code_column(levels, LEVEL_CODE, LEVELS, "level")
        stc = _code_column(statuses, STATUS_CODE, STATUSES, "status")
        id_list = ids.tolist() if isinstance(ids, np.ndarray) else list(ids)
        for i, a in enumerate(id_list):
            if type(a) is not str or not a:
                raise ValueError(f"row {i}: {_bad_id(a)}")
        # ---- validated: mutate from here on
        his = np.zeros(n, dtype=np.int64)
        los = np.zeros(n, dtype=np.int64)
        kinds = np.zeros(n, dtype=np.int8)
        ok = np.zeros(n, dtype=np.bool_)
        arr = np.asarray(id_list)
        if arr.dtype == np.dtype("<U36"):
            K.k_parse_uuid_rows(arr.view(np.uint32).reshape(n, 36), his, los, ok)
        for i in np.flatnonzero(~ok).tolist():
            key = self._encode(id_list[i], True)
            assert key is not None
            his[i], los[i], kinds[i] = key
        cells = np.zeros(n, dtype=np.uint64)
        online = np.flatnonzero(stc == 0)
        l2c = _latlng_to_cell
        cells[online] = [
            l2c(a, b, H3_RES) for a, b in zip(la[online].tolist(), lo[online].tolist(), strict=True)
        ]
        self._grow_main(int(self._st[K.ST_N]) + n)
        start = 0
        while True:
            code, start = K.k_upsert_batch(
                *self._mut, his, los, kinds, la, lo, rt, sp, lv, stc, cells, start
            )
            if code == K.OK:
                break
            self._grow(code)
        if n >= 4096:
            self.compact()

    def remove(self, artisan_id: str) -> None:
        """Remove an artisan; unknown ids are ignored."""
        if type(artisan_id) is not str or not artisan_id:
            raise _bad_id(artisan_id)
        key = self._encode(artisan_id, False)
        if key is None:
            return
        K.k_remove(*self._arrs, key[0], key[1], key[2])
        if key[2] == KIND_SIDE:
            del self._side_id[artisan_id]
            del self._side_str[key[1]]

    def set_status(self, artisan_id: str, status: str) -> bool:
        """Change only the status of a known artisan; returns False if unknown."""
        stc = status_code(status)
        slot = self._slot(artisan_id)
        if slot < 0:
            return False
        lat, lon, rating = self._m_f[slot].tolist()
        sp, lv, _, kind = self._m_b[slot].tolist()
        hi, lo = self._m_id[slot].tolist()
        cell = _latlng_to_cell(lat, lon, H3_RES) if stc == 0 else 0
        code = K.k_upsert(*self._mut, hi, lo, kind, lat, lon, rating, sp, lv, stc, cell)
        while code:
            self._grow(code)
            code = K.k_upsert(*self._mut, hi, lo, kind, lat, lon, rating, sp, lv, stc, cell)
        return True

    # ------------------------------------------------------------------ reads

    def __len__(self) -> int:
        return int(self._st[K.ST_N])

    def __contains__(self, artisan_id: object) -> bool:
        if type(artisan_id) is not str or not artisan_id:
            return False
        return self._slot(artisan_id) >= 0

    def get(self, artisan_id: str) -> ArtisanRecord | None:
        """The stored record of ``artisan_id`` or None."""
        slot = self._slot(artisan_id)
        if slot < 0:
            return None
        lat, lon, rating = self._m_f[slot].tolist()
        sp, lv, stc, _ = self._m_b[slot].tolist()
        return ArtisanRecord(
            artisan_id, lat, lon, SPECIALTIES[sp], LEVELS[lv], rating, STATUSES[stc]
        )

    def online_count(self, specialty: str) -> int:
        """Number of ONLINE artisans of ``specialty``."""
        return int(self._s_cnt[specialty_code(specialty)])

    def memory_bytes(self) -> int:
        """Index memory: nbytes of every numpy array (at capacity) + side-id dicts."""
        total = sum(int(a.nbytes) for a in self._arrs)
        if self._side_id:
            total += sys.getsizeof(self._side_id) + sys.getsizeof(self._side_str)
            total += sum(sys.getsizeof(s) + 32 for s in self._side_id)
        return total

    def query(
        self,
        lat: float,
        lon: float,
        specialty: str,
        k: int = 10,
        max_km: float = 15.0,
        exclude: Iterable[str] = (),
    ) -> list[Candidate]:
        """The k best ONLINE artisans of ``specialty`` within ``max_km``, best first.

        Exact: identical to a brute-force scan of every artisan.
        """
        sp = SPECIALTY_CODE.get(specialty) if type(specialty) is str else None
        if sp is None:
            sp = specialty_code(specialty)
        if type(lat) is not float:
            lat = _real(lat, "lat")
        if not -90.0 <= lat <= 90.0:
            raise _bad_lat(lat)
        if type(lon) is not float:
            lon = _real(lon, "lon")
        if not -180.0 <= lon <= 180.0:
            raise _bad_lon(lon)
        if type(k) is not int:
            if isinstance(k, bool) or not isinstance(k, int | np.integer):
                raise ValueError(f"k must be an integer >= 1, got {k!r}")
            k = int(k)
        if k < 1:
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
        if type(max_km) is not float:
            max_km = _real(max_km, "max_km")
        if not 0.0 <= max_km < math.inf:
            raise ValueError(f"max_km must be a finite number >= 0, got {max_km!r}")
        excl = self._exclude_slots(exclude) if exclude else _EMPTY_EXCL
        total = int(self._s_cnt[sp])
        if total == 0:
            return []
        bufs = self._bufs  # reused between calls; taken (not shared) while in use
        self._bufs = None
        if bufs is None or bufs.cap < k + _TIE_ROOM:
            bufs = _Buffers(k + _TIE_ROOM)
        o_f, o_i, o_hex, io, fpar, ipar = bufs.arrays
        io[:] = 0
        fpar[0] = lat
        fpar[1] = lon
        fpar[2] = max_km
        fpar[3] = _PENT_CHORD
        ipar[0] = sp
        ipar[1] = k
        cell = _latlng_to_cell(lat, lon, H3_RES)
        rings = _FIRST_RINGS
        r_from = 0
        qa = self._qarrs
        while True:
            disk = _grid_disk(cell, rings)
            if disk.shape[0] != 3 * rings * (rings + 1) + 1:
                code = K.Q_BRUTE
                break
            ipar[2] = r_from
            ipar[3] = rings
            code = K.k_query_rings(*qa, disk, _RINGLB, _PENT, fpar, ipar, excl, o_f, o_i, o_hex, io)
            if code != K.Q_MORE:
                break
            r_from = rings + 1
            rings *= 2
            if rings > MAX_RINGS or 3 * rings * (rings + 1) * _CELL_COST > total:
                code = K.Q_BRUTE
                break
        if code != K.Q_DONE:
            if code == K.Q_OVERFLOW:
                bufs = _Buffers(k + total)
                o_f, o_i, o_hex, io, _, _ = bufs.arrays
            code = K.k_query_brute(
                self._bt, self._p_xyz, self._p_f, self._p_i, self._m_id, self._m_b,
                self._s_maxb, self._pol, fpar, ipar, excl, o_f, o_i, o_hex, io,
            )  # fmt: skip
            if code != K.Q_DONE:  # pragma: no cover - buffer sized to hold everything
                raise RuntimeError("matching: brute-force buffer overflow")
        count, _, need_sort = io.tolist()
        if count == 0:
            self._bufs = bufs
            return []
        m = count if need_sort else min(count, k)
        raw = o_hex[:m].tobytes().decode("ascii")
        ids = [raw[i : i + 36] for i in range(0, 36 * m, 36)]
        side = o_i[1, :m]
        if (side >= 0).any():
            side_str = self._side_str
            for i in np.flatnonzero(side >= 0).tolist():
                ids[i] = side_str[int(side[i])]
        out = list(map(Candidate, ids, o_f[1, :m].tolist(), o_f[0, :m].tolist()))
        self._bufs = bufs
        if need_sort:
            out.sort(key=lambda c: (c.score, c.distance_km, c.artisan_id))
            del out[k:]
        return out

    def _exclude_slots(self, exclude: Iterable[str]) -> npt.NDArray[np.int64]:
        if isinstance(exclude, str):
            raise ValueError("exclude must be an iterable of artisan ids, not a str")
        slots: list[int] = []
        for a in exclude:
            s = self._slot(a)
            if s >= 0:
                slots.append(s)
        if not slots:
            return _EMPTY_EXCL
        return np.unique(np.array(slots, dtype=np.int64))

    def naive_scan(
        self, lat: float, lon: float, specialty: str, k: int = 10, max_km: float = 15.0
    ) -> list[tuple[int, float]]:
        """Benchmark reference: numba scan of every slot (no index); [(slot, score)]."""
        sp = specialty_code(specialty)
        o_score = np.empty(k, dtype=np.float64)
        o_slot = np.empty(k, dtype=np.int64)
        c = K.k_naive_scan(
            self._m_f, self._m_b, len(self), sp, float(lat), float(lon), k, float(max_km),
            self._pol, o_score, o_slot,
        )  # fmt: skip
        return list(zip(o_slot[:c].tolist(), o_score[:c].tolist(), strict=True))


def _float_column(col: Any, name: str) -> npt.NDArray[np.float64]:
    try:
        arr = np.asarray(col)
        if arr.dtype == np.bool_ or arr.dtype.kind not in "iuf":
            if arr.dtype == object:
                for i, x in enumerate(col):
                    if isinstance(x, bool) or not isinstance(x, _REAL):
                        raise ValueError(f"row {i}: {name} must be a real number, got {x!r}")
            raise ValueError(f"{name} column must hold real numbers (dtype {arr.dtype})")
        return np.ascontiguousarray(arr, dtype=np.float64).reshape(-1)
    except (TypeError, OverflowError) as exc:
        raise ValueError(f"{name} column must hold real numbers: {exc}") from exc


def _check_range(arr: npt.NDArray[np.float64], lo: float, hi: float, name: str) -> None:
    bad = ~((arr >= lo) & (arr <= hi))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"row {i}: {name} must be a finite number in [{lo:g}, {hi:g}], got {arr[i]!r}"
        )


def _code_column(
    col: Any, table: dict[str, int], names: tuple[str, ...], what: str
) -> npt.NDArray[np.int8]:
    values = col.tolist() if isinstance(col, np.ndarray) else col
    get = table.get
    out = np.empty(len(values), dtype=np.int8)
    try:
        codes = [get(v, -1) for v in values]
    except TypeError:
        codes = [get(v, -1) if isinstance(v, str) else -1 for v in values]
    out[:] = codes
    if (out < 0).any():
        i = int(np.flatnonzero(out < 0)[0])
        raise ValueError(f"row {i}: unknown {what} {values[i]!r}; expected one of {names}")
    return out


class _Buffers:
    """Per-query output buffers (reused across queries by one index)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.arrays = (
            np.empty((2, cap), dtype=np.float64),  # score, distance
            np.empty((2, cap), dtype=np.int64),  # slot, side key
            np.empty((cap, 36), dtype=np.uint8),  # id text
            np.zeros(3, dtype=np.int64),  # count, seen, need_sort
            np.zeros(4, dtype=np.float64),  # qlat, qlon, max_km, pentagon chord
            np.zeros(4, dtype=np.int64),  # spec, k, r_from, r_to
        )


@_kernels._jit
def _compact_kernel(
    bt: _kernels.I64, cls: _kernels.I64, starts: _kernels.I64, m_i: _kernels.I32,
    o_xyz: _kernels.F32, o_f: _kernels.F64, o_i: _kernels.I32,
    n_xyz: _kernels.F32, n_f: _kernels.F64, n_i: _kernels.I32,
) -> None:  # fmt: skip
    for b in range(bt.shape[0]):
        if bt[b, 0] < 0:
            continue
        size = bt[b, 2]
        if size == 0:
            bt[b, 1] = -1
            bt[b, 3] = -1
            continue
        src = bt[b, 1]
        dst = starts[b]
        for j in range(size):
            for c in range(3):
                n_xyz[dst + j, c] = o_xyz[src + j, c]
                n_f[dst + j, c] = o_f[src + j, c]
            s = o_i[src + j, 0]
            n_i[dst + j, 0] = s
            n_i[dst + j, 1] = o_i[src + j, 1]
            m_i[s, 1] = dst + j
        bt[b, 1] = dst
        bt[b, 3] = cls[b]
