"""Input checks shared by the index's methods (every failure is a ``ValueError``)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from matching.codes import RATING_MAX, RATING_MIN, level_code, specialty_code, status_code

REAL_TYPES = (int, float, np.integer, np.floating)
J = TypeVar("J", bound=Hashable)


def real(x: object, name: str) -> float:
    """``x`` as a float if it is a real number (bools excluded), else ``ValueError``."""
    if isinstance(x, bool) or not isinstance(x, REAL_TYPES):
        raise ValueError(f"{name} must be a real number, got {x!r}")
    return float(x)


def bad_lat(lat: float) -> ValueError:
    return ValueError(f"lat must be a finite number in [-90, 90], got {lat!r}")


def bad_lon(lon: float) -> ValueError:
    return ValueError(f"lon must be a finite number in [-180, 180], got {lon!r}")


def check_lat(lat: object) -> float:
    """``lat`` as a float in [-90, 90], else ``ValueError``."""
    la = lat if type(lat) is float else real(lat, "lat")
    if not -90.0 <= la <= 90.0:
        raise bad_lat(la)
    return la


def check_lon(lon: object) -> float:
    """``lon`` as a float in [-180, 180], else ``ValueError``."""
    lo = lon if type(lon) is float else real(lon, "lon")
    if not -180.0 <= lo <= 180.0:
        raise bad_lon(lo)
    return lo


def bad_rating(rating: float) -> ValueError:
    return ValueError(f"rating must be a finite number in [0, 5], got {rating!r}")


def bad_id(artisan_id: object) -> ValueError:
    return ValueError(f"artisan_id must be a non-empty str, got {artisan_id!r}")


def check_row(
    artisan_id: object,
    lat: object,
    lon: object,
    specialty: object,
    level: object,
    rating: object,
    status: object,
) -> tuple[str, float, float, str, str, float, str]:
    """One artisan's row (:meth:`ArtisanIndex.upsert`'s arguments, or a row of a bulk
    upsert), checked field by field in that order: the row with its numbers as floats,
    or ``ValueError``."""
    if type(artisan_id) is not str or not artisan_id:
        raise bad_id(artisan_id)
    la, lo = check_lat(lat), check_lon(lon)
    rt = rating if type(rating) is float else real(rating, "rating")
    if not RATING_MIN <= rt <= RATING_MAX:
        raise bad_rating(rt)
    specialty_code(specialty)
    level_code(level)
    status_code(status)
    return artisan_id, la, lo, str(specialty), str(level), rt, str(status)


def check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    return int(k)


def check_max_km(max_km: object) -> float:
    value = real(max_km, "max_km")
    if not 0.0 <= value < float("inf"):
        raise ValueError(f"max_km must be a finite number >= 0, got {max_km!r}")
    return value


def float_column(col: Any, name: str) -> npt.NDArray[np.float64]:
    """A bulk-load column as contiguous float64, or ``ValueError`` naming the bad row."""
    try:
        arr = np.asarray(col)
        if arr.dtype == np.bool_ or arr.dtype.kind not in "iuf":
            if arr.dtype == object:
                for i, x in enumerate(col):
                    if isinstance(x, bool) or not isinstance(x, REAL_TYPES):
                        raise ValueError(f"row {i}: {name} must be a real number, got {x!r}")
            raise ValueError(f"{name} column must hold real numbers (dtype {arr.dtype})")
        return np.ascontiguousarray(arr, dtype=np.float64).reshape(-1)
    except (TypeError, OverflowError) as exc:
        raise ValueError(f"{name} column must hold real numbers: {exc}") from exc


def check_range(arr: npt.NDArray[np.float64], lo: float, hi: float, name: str) -> None:
    bad = ~((arr >= lo) & (arr <= hi))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"row {i}: {name} must be a finite number in [{lo:g}, {hi:g}], got {arr[i]!r}"
        )


def code_column(
    col: Any, table: dict[str, int], names: tuple[str, ...], what: str
) -> npt.NDArray[np.int8]:
    if isinstance(col, np.ndarray) and col.dtype.kind == "U":
        # one vectorised comparison per name: no Python string per row (a million
        # temporary str objects would leave the process's heap that much larger)
        out = np.full(col.shape[0], -1, dtype=np.int8)
        for name, code in table.items():
            out[col == name] = code
        if (out < 0).any():
            i = int(np.flatnonzero(out < 0)[0])
            raise ValueError(f"row {i}: unknown {what} {str(col[i])!r}; expected one of {names}")
        return out
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


@dataclass(frozen=True, slots=True)
class CheckedJobs(Generic[J]):
    """:meth:`ArtisanIndex.assign`'s jobs, checked: ids in order, coordinates and
    specialty codes as columns, and the exclusions of jobs that have their own."""

    ids: list[J]
    lats: npt.NDArray[np.float64]
    lons: npt.NDArray[np.float64]
    specs: npt.NDArray[np.int64]
    own: dict[int, list[str]]  # job index -> every id it excludes (queried alone)


def check_jobs(
    jobs: Sequence[tuple[J, float, float, str]],
    common: list[str],
    per_job: Mapping[J, Any],
) -> CheckedJobs[J]:
    """Every job a ``(job_id, lat, lon, specialty)`` tuple with valid values, its own
    exclusions (if any) an iterable of ids, and no job id twice."""
    n = len(jobs)
    ids: list[J] = []
    lats = np.empty(n, dtype=np.float64)
    lons = np.empty(n, dtype=np.float64)
    specs = np.empty(n, dtype=np.int64)
    own: dict[int, list[str]] = {}
    for i, job in enumerate(jobs):
        if not isinstance(job, tuple) or len(job) != 4:
            raise ValueError(f"job {i}: expected (job_id, lat, lon, specialty), got {job!r}")
        job_id, lat, lon, specialty = job
        specs[i] = specialty_code(specialty)
        lats[i], lons[i] = check_lat(lat), check_lon(lon)
        extra = per_job.get(job_id, ())
        if isinstance(extra, str):
            raise ValueError(f"exclude_per_job[{job_id!r}] must be an iterable of ids, not a str")
        if extra:
            own[i] = [*common, *extra]
        ids.append(job_id)
    if len(set(ids)) != len(ids):
        raise ValueError("assign: duplicate job ids")
    return CheckedJobs(ids, lats, lons, specs, own)
