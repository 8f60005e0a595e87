"""The in-memory columnar artisan index (CONTRACT section 7)."""

from __future__ import annotations

import sys
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, Final, NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt
from h3.api import basic_int as _h3

from matching import assign as _assign
from matching import kernels_ids as _kid
from matching import kernels_query as _kq
from matching import kernels_store as _kst
from matching import walk
from matching.codes import (
    LEVEL_CODE,
    LEVELS,
    RATING_MAX,
    RATING_MIN,
    SPECIALTIES,
    SPECIALTY_CODE,
    STATUS_CODE,
    STATUSES,
    specialty_code,
    status_code,
)
from matching.geometry import H3_RES
from matching.idmap import KIND_SIDE, KIND_UUID, parse_uuid
from matching.jit import M_CNT, OK, UP_SLOW
from matching.policy import Candidate, RankingPolicy
from matching.store import Store, release_free_heap
from matching.validation import (
    bad_id,
    check_jobs,
    check_k,
    check_lat,
    check_lon,
    check_max_km,
    check_range,
    check_row,
    code_column,
    float_column,
)

# numba dispatchers are opaque to mypy: call them through Any-typed aliases
KID: Any = _kid
KQ: Any = _kq
KST: Any = _kst
_latlng_to_cell: Final = _h3.latlng_to_cell
_SPEC_GET: Final = SPECIALTY_CODE.get
J = TypeVar("J", bound=Hashable)
#: rows of :meth:`ArtisanIndex.upsert_many` converted at a time (bounds its temporaries)
_BULK_CHUNK: Final = 1 << 15
#: batches of :meth:`ArtisanIndex.upsert_many` this small are checked and applied row by
#: row.  Back to back the column path costs ~35 µs a call plus ~1.3 µs a row, the row
#: path ~4 µs a row; but a mirror applies a batch every 50 ms, its code cold, and there
#: the column path's many small numpy steps cost 500-1,500 µs for 10-160 rows against
#: 200-700 by rows (12-08; the two cross at ~500 rows)
SMALL_BATCH: Final = 128


class ArtisanRecord(NamedTuple):
    """What :meth:`ArtisanIndex.get` returns."""

    artisan_id: str
    lat: float
    lon: float
    specialty: str
    level: str
    rating: float
    status: str


class ArtisanIndex:
    """Exact top-k ranking of ONLINE artisans, bucketed by (specialty, H3 res-8 cell).

    Storage (numpy, capacity-doubled, never reallocated per call; see
    :mod:`matching.kernels_store`): 52 bytes per artisan slot, an id hash table
    (load <= 1/2), and for ONLINE artisans only a pool of 48-byte entries in
    power-of-two blocks per (specialty, cell) bucket; moves are swap-removes.

    Every bucket is the leaf of a tree of H3 ancestors (resolutions 0-7) whose
    nodes keep the bounding box and the largest bonus of the members below them.
    :meth:`query` searches that tree best-first inside one numba kernel call,
    opening nodes by increasing lower bound of their members' scores, and stops
    once that bound exceeds the k-th best score found: it touches only the
    members that could rank, whatever the policy (see
    :mod:`matching.kernels_tree`).  :meth:`assign` ranks several jobs together.

    Extra API for the dispatcher: :meth:`get`, :meth:`set_status`,
    ``artisan_id in index``, :meth:`memory_bytes`.

    Not thread-safe: mutate and query from one thread (the event loop).
    """

    def __init__(self, policy: RankingPolicy | None = None, capacity: int = 1024) -> None:
        self.policy: Final = policy if policy is not None else RankingPolicy()
        row = [*self.policy.level_bonus_array().tolist(), self.policy.rating_km_per_star]
        self._s = Store(row, capacity)
        self._side_id: dict[str, int] = {}
        self._side_str: dict[int, str] = {}
        self._side_next = 0
        self._bufs: walk.Buffers | None = None
        # the common query's and upsert's kernels and the address of the store's
        # descriptor they read the arrays from: all three fixed for the store's life
        self._qfast: Final = self._s.k_query_fast
        self._ufast: Final = self._s.k_upsert_obj
        self._desc: Final = self._s.desc_addr

    # ------------------------------------------------------------------ ids

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
            raise bad_id(artisan_id)
        key = self._encode(artisan_id, False)
        if key is None:
            return -1
        s = self._s
        return int(KID.k_lookup(s.htab, s.m_id, s.m_b, key[0], key[1], key[2]))

    # ------------------------------------------------------------------ mutation

    def _apply(self, hi: int, lo: int, kind: int, lat: float, lon: float, rating: float,
               sp: int, lv: int, stc: int) -> None:  # fmt: skip
        cell = _latlng_to_cell(lat, lon, H3_RES) if stc == 0 else 0
        s = self._s
        code = s.k_upsert(s.desc_addr, hi, lo, kind, lat, lon, rating, sp, lv, stc, cell)
        while code:
            s.grow(code)
            code = s.k_upsert(s.desc_addr, hi, lo, kind, lat, lon, rating, sp, lv, stc, cell)

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
        """Insert or update one artisan (O(1) amortised; ~3 µs for a moving UUID artisan)."""
        try:
            cell = _latlng_to_cell(lat, lon, H3_RES) if status == "ONLINE" else 0
        except (TypeError, ValueError, OverflowError):  # not coordinates: validated below
            cell = -1
        if cell >= 0:
            # the common case: the kernel takes the arguments as they are and answers
            # UP_SLOW if they need validating (or the id is not a canonical UUID)
            code = self._ufast(self._desc, artisan_id, lat, lon, specialty, level, rating, status, cell)  # fmt: skip
            if code == OK:
                return
            if code != UP_SLOW:  # an array to grow: the general path retries
                self._s.grow(code)
        self._upsert(artisan_id, lat, lon, specialty, level, rating, status)

    def _upsert(
        self, artisan_id: str, lat: float, lon: float, specialty: str, level: str,
        rating: float, status: str,
    ) -> None:  # fmt: skip
        """:meth:`upsert`: validation, non-UUID ids, growth."""
        artisan_id, lat, lon, specialty, level, rating, status = check_row(
            artisan_id, lat, lon, specialty, level, rating, status
        )
        sp, lv, stc = SPECIALTY_CODE[specialty], LEVEL_CODE[level], STATUS_CODE[status]
        key = self._encode(artisan_id, True)
        assert key is not None
        self._apply(key[0], key[1], key[2], lat, lon, rating, sp, lv, stc)

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
        if n <= SMALL_BATCH:
            self._upsert_rows(ids, *cols)
            return
        la = float_column(lats, "lat")
        lo = float_column(lons, "lon")
        rt = float_column(ratings, "rating")
        check_range(la, -90.0, 90.0, "lat")
        check_range(lo, -180.0, 180.0, "lon")
        check_range(rt, RATING_MIN, RATING_MAX, "rating")
        sp = code_column(specialties, SPECIALTY_CODE, SPECIALTIES, "specialty")
        lv = code_column(levels, LEVEL_CODE, LEVELS, "level")
        stc = code_column(statuses, STATUS_CODE, STATUSES, "status")
        id_list = ids.tolist() if isinstance(ids, np.ndarray) else list(ids)
        for i, a in enumerate(id_list):
            if type(a) is not str or not a:
                raise ValueError(f"row {i}: {bad_id(a)}")
        # ---- validated: mutate from here on
        s = self._s
        s.grow_main(s.n + n)
        for i0 in range(0, n, _BULK_CHUNK):  # small temporaries: the process keeps no slack
            self._upsert_chunk(id_list, i0, min(n, i0 + _BULK_CHUNK), la, lo, rt, sp, lv, stc)
        if n >= 4096:
            s.compact()
            # The id list and the code columns (~11 B an artisan at a million) are freed
            # into the C heap first, or its trim would leave them held.
            del id_list, la, lo, rt, sp, lv, stc
            release_free_heap()

    def _upsert_rows(self, *cols: Sequence[Any] | npt.NDArray[Any]) -> None:
        """:meth:`upsert_many` of a small batch: every row checked, then each upserted."""
        lists = [c.tolist() if isinstance(c, np.ndarray) else list(c) for c in cols]
        rows = []
        for i, row in enumerate(zip(*lists, strict=True)):
            try:
                rows.append(check_row(*row))
            except ValueError as exc:
                raise ValueError(f"row {i}: {exc}") from None
        for row in rows:  # validated: nothing raises from here on
            self.upsert(*row)

    def _upsert_chunk(
        self, id_list: list[Any], i0: int, i1: int, la: npt.NDArray[np.float64],
        lo: npt.NDArray[np.float64], rt: npt.NDArray[np.float64], sp: npt.NDArray[np.int8],
        lv: npt.NDArray[np.int8], stc: npt.NDArray[np.int8],
    ) -> None:  # fmt: skip
        """Apply validated rows ``i0..i1`` of :meth:`upsert_many`."""
        m = i1 - i0
        ids = id_list[i0:i1]
        la, lo, rt = la[i0:i1], lo[i0:i1], rt[i0:i1]
        sp, lv, stc = sp[i0:i1], lv[i0:i1], stc[i0:i1]
        his = np.zeros(m, dtype=np.int64)
        los = np.zeros(m, dtype=np.int64)
        kinds = np.zeros(m, dtype=np.int8)
        ok = np.zeros(m, dtype=np.bool_)
        arr = np.asarray(ids)
        if arr.dtype == np.dtype("<U36"):
            KID.k_parse_uuid_rows(arr.view(np.uint32).reshape(m, 36), his, los, ok)
        del arr
        for i in np.flatnonzero(~ok).tolist():
            key = self._encode(ids[i], True)
            assert key is not None
            his[i], los[i], kinds[i] = key
        cells = np.zeros(m, dtype=np.uint64)
        online = np.flatnonzero(stc == 0)
        l2c = _latlng_to_cell
        cells[online] = [
            l2c(a, b, H3_RES) for a, b in zip(la[online].tolist(), lo[online].tolist(), strict=True)
        ]
        s = self._s
        start = 0
        while True:
            code, start = KST.k_upsert_batch(
                *s.mut, his, los, kinds, la, lo, rt, sp, lv, stc, cells, start
            )
            if code == OK:
                return
            s.grow(code)

    def remove(self, artisan_id: str) -> None:
        """Remove an artisan; unknown ids are ignored."""
        if type(artisan_id) is not str or not artisan_id:
            raise bad_id(artisan_id)
        key = self._encode(artisan_id, False)
        if key is None:
            return
        KST.k_remove(*self._s.mut, key[0], key[1], key[2])
        if key[2] == KIND_SIDE:
            del self._side_id[artisan_id]
            del self._side_str[key[1]]

    def set_status(self, artisan_id: str, status: str) -> bool:
        """Change only the status of a known artisan; returns False if unknown."""
        stc = status_code(status)
        slot = self._slot(artisan_id)
        if slot < 0:
            return False
        s = self._s
        lat, lon, rating = s.m_f[slot].tolist()
        sp, lv, _, kind = s.m_b[slot].tolist()
        hi, lo = s.m_id[slot].tolist()
        self._apply(hi, lo, kind, lat, lon, rating, sp, lv, stc)
        return True

    def compact(self) -> None:
        """Repack the ONLINE pool (drops free blocks and slack); O(ONLINE artisans).

        :meth:`upsert_many` calls it after a bulk load.  Optional otherwise.
        """
        self._s.compact()

    # ------------------------------------------------------------------ reads

    def __len__(self) -> int:
        return self._s.n

    def __contains__(self, artisan_id: object) -> bool:
        if type(artisan_id) is not str or not artisan_id:
            return False
        return self._slot(artisan_id) >= 0

    def get(self, artisan_id: str) -> ArtisanRecord | None:
        """The stored record of ``artisan_id`` or None."""
        slot = self._slot(artisan_id)
        if slot < 0:
            return None
        s = self._s
        lat, lon, rating = s.m_f[slot].tolist()
        sp, lv, stc, _ = s.m_b[slot].tolist()
        return ArtisanRecord(
            artisan_id, lat, lon, SPECIALTIES[sp], LEVELS[lv], rating, STATUSES[stc]
        )

    def online_count(self, specialty: str) -> int:
        """Number of ONLINE artisans of ``specialty``."""
        return int(self._s.meta[M_CNT + specialty_code(specialty)])

    def memory_bytes(self) -> int:
        """Index memory: nbytes of every numpy array (at capacity) and the side-id dicts."""
        total = self._s.nbytes()
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
        if not exclude:
            # the common case: the kernel takes the arguments as they are and answers
            # None if they need validating (or the search needs the general path)
            out: list[Candidate] | None = self._qfast(self._desc, lat, lon, specialty, k, max_km)
            if out is not None:
                return out
        return self._query(lat, lon, specialty, k, max_km, exclude)

    def _query(
        self, lat: float, lon: float, specialty: str, k: int, max_km: float, exclude: Iterable[str]
    ) -> list[Candidate]:
        """:meth:`query`: validation, exclusions, large k, non-UUID ids, brute force."""
        sp = _SPEC_GET(specialty) if type(specialty) is str else None
        if sp is None:
            sp = specialty_code(specialty)
        if type(lat) is not float or not -90.0 <= lat <= 90.0:
            lat = check_lat(lat)
        if type(lon) is not float or not -180.0 <= lon <= 180.0:
            lon = check_lon(lon)
        if type(k) is not int or k < 1:
            k = check_k(k)
        if type(max_km) is not float or not 0.0 <= max_km < 1e308:
            max_km = check_max_km(max_km)
        excl = self._exclude_slots(exclude) if exclude else walk.EMPTY_EXCL
        return self._ranked(lat, lon, sp, k, max_km, excl)

    def _ranked(
        self, lat: float, lon: float, sp: int, k: int, max_km: float, excl: npt.NDArray[np.int64]
    ) -> list[Candidate]:
        """The general path's search on validated values and excluded slots."""
        bufs = self._bufs  # reused between calls; taken (not shared) while in use
        self._bufs = None
        if bufs is None or bufs.cap < k + walk.TIE_ROOM:
            bufs = walk.Buffers(k + walk.TIE_ROOM)
        res, self._bufs = walk.run(self._s, bufs, self._side_str, lat, lon, max_km, sp, k, excl)
        return res

    def assign(
        self,
        jobs: Sequence[tuple[J, float, float, str]],
        k: int = 10,
        max_km: float = 15.0,
        exclude: Iterable[str] = (),
        *,
        exclude_per_job: Mapping[J, Iterable[str]] | None = None,
    ) -> dict[J, Candidate | None]:
        """Assign simultaneous jobs ``(job_id, lat, lon, specialty)`` to distinct artisans.

        Each job's candidates are its :meth:`query` top ``k`` within ``max_km``,
        without ``exclude`` (every job) and ``exclude_per_job[job_id]`` (that job).
        Among assignments using each artisan at most once, the result serves the
        most jobs, and among those has the smallest sum of scores (exact; see
        :mod:`matching.assign`).  It maps every job id to its :class:`Candidate`,
        or None when the job gets nobody.  With ``k >= len(jobs)`` it is optimal
        over every eligible artisan, not only the top ``k``.  Duplicate job ids
        or a malformed job raise ``ValueError``.
        """
        if isinstance(exclude, str):
            raise ValueError("exclude must be an iterable of artisan ids, not a str")
        if type(k) is not int or k < 1:
            k = check_k(k)
        if type(max_km) is not float or not 0.0 <= max_km < 1e308:
            max_km = check_max_km(max_km)
        common = list(exclude)
        c = check_jobs(jobs, common, exclude_per_job if exclude_per_job is not None else {})
        out: dict[J, Candidate | None] = dict.fromkeys(c.ids)
        excl = self._exclude_slots(common) if common else walk.EMPTY_EXCL
        # one query a job: without exclusions each takes query's own fast kernel (a
        # hundred of them cost less than one batched kernel call and its Python results)
        cands: list[list[Candidate]] = []
        rows = zip(c.lats.tolist(), c.lons.tolist(), c.specs.tolist(), strict=True)
        for i, (la, lo, sp) in enumerate(rows):
            own = c.own.get(i)
            if own is not None:
                cands.append(self.query(la, lo, SPECIALTIES[sp], k, max_km, own))
            elif excl.size:
                cands.append(self._ranked(la, lo, sp, k, max_km, excl))
            else:
                cands.append(self.query(la, lo, SPECIALTIES[sp], k, max_km))
        for job_id, row, pick in zip(c.ids, cands, _assign.solve(cands), strict=True):
            out[job_id] = row[pick] if pick >= 0 else None
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
            return walk.EMPTY_EXCL
        return np.unique(np.array(slots, dtype=np.int64))

    def naive_scan(
        self, lat: float, lon: float, specialty: str, k: int = 10, max_km: float = 15.0
    ) -> list[tuple[int, float]]:
        """Benchmark reference: numba scan of every slot (no index); [(slot, score)]."""
        sp = specialty_code(specialty)
        o_score = np.empty(k, dtype=np.float64)
        o_slot = np.empty(k, dtype=np.int64)
        s = self._s
        c = KQ.k_naive_scan(
            s.m_f, s.m_b, s.n, sp, float(lat), float(lon), k, float(max_km),
            s.fmeta, o_score, o_slot,
        )  # fmt: skip
        return list(zip(o_slot[:c].tolist(), o_score[:c].tolist(), strict=True))
