"""Every bad input raises ValueError with a clear message; upsert_many is atomic."""

from __future__ import annotations

import math
import re
import uuid
from typing import Any

import numpy as np
import pytest

from matching import ArtisanIndex, RankingPolicy, warmup
from matching.index import SMALL_BATCH

U = str(uuid.UUID(int=42))
GOOD = dict(lat=48.85, lon=2.35, specialty="PLUMBER", level="ELITE", rating=4.5, status="ONLINE")


def _up(idx: ArtisanIndex, **kw: object) -> None:
    args = {**GOOD, **kw}
    idx.upsert(
        args.pop("artisan_id", U), args["lat"], args["lon"], args["specialty"],  # type: ignore[arg-type]
        args["level"], args["rating"], args["status"],  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value", "msg"),
    [
        ("specialty", "ROOFER", "unknown specialty"),
        ("specialty", None, "unknown specialty"),
        ("specialty", ["PLUMBER"], "unknown specialty"),
        ("level", "GURU", "unknown level"),
        ("status", "ASLEEP", "unknown status"),
        ("status", "online", "unknown status"),
        ("lat", math.nan, "lat"),
        ("lat", 90.0001, "lat"),
        ("lat", -math.inf, "lat"),
        ("lat", "48.8", "lat"),
        ("lat", True, "lat"),
        ("lon", 180.5, "lon"),
        ("lon", math.nan, "lon"),
        ("rating", 5.01, "rating"),
        ("rating", -0.1, "rating"),
        ("rating", math.nan, "rating"),
        ("artisan_id", "", "artisan_id"),
        ("artisan_id", 12, "artisan_id"),
    ],
)
def test_upsert_rejects(field: str, value: object, msg: str) -> None:
    idx = ArtisanIndex()
    with pytest.raises(ValueError, match=msg):
        _up(idx, **{field: value})
    assert len(idx) == 0


def test_upsert_accepts_bounds_and_numpy_scalars() -> None:
    idx = ArtisanIndex()
    _up(idx, lat=90, lon=-180, rating=0)
    _up(idx, artisan_id="x", lat=np.float32(-90.0), lon=np.int64(180), rating=np.float64(5))
    assert len(idx) == 2


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"k": 0}, "k must be"),
        ({"k": -3}, "k must be"),
        ({"k": 2.0}, "k must be"),
        ({"k": True}, "k must be"),
        ({"max_km": -1.0}, "max_km"),
        ({"max_km": math.nan}, "max_km"),
        ({"max_km": math.inf}, "max_km"),
        ({"lat": 91.0}, "lat"),
        ({"lon": math.inf}, "lon"),
        ({"specialty": "ROOFER"}, "unknown specialty"),
        ({"exclude": "abc"}, "exclude"),
        ({"exclude": [3]}, "artisan_id"),
    ],
)
def test_query_rejects(kw: dict[str, object], msg: str) -> None:
    idx = ArtisanIndex()
    _up(idx)
    args: dict[str, object] = {"lat": 48.85, "lon": 2.35, "specialty": "PLUMBER", **kw}
    with pytest.raises(ValueError, match=msg):
        idx.query(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize("pad", [0, SMALL_BATCH], ids=["row by row", "by column"])
def test_upsert_many_is_atomic(pad: int) -> None:
    """The same bad rows, in a small batch (checked row by row) and after `pad` good rows
    (a batch past SMALL_BATCH: checked by column)."""
    idx = ArtisanIndex()
    _up(idx)
    ids = [str(uuid.UUID(int=1000 + i)) for i in range(5 + pad)]  # none is U
    good = {
        "lats": [1.0] * 5,
        "lons": [2.0] * 5,
        "specialties": ["PLUMBER"] * 5,
        "levels": ["STANDARD"] * 5,
        "ratings": [4.0] * 5,
        "statuses": ["ONLINE"] * 5,
    }
    bad_cases = [
        ("lats", [1.0, 2.0, 3.0, math.nan, 1.0], "row 3: lat"),
        ("lons", [1.0, 2.0, 3.0, 4.0, 200.0], "row 4: lon"),
        ("ratings", [1.0, 6.0, 3.0, 4.0, 2.0], "row 1: rating"),
        (
            "specialties",
            ["PLUMBER", "X", "PLUMBER", "PLUMBER", "PLUMBER"],
            "row 1: unknown specialty",
        ),
        ("levels", ["STANDARD"] * 4 + ["BOSS"], "row 4: unknown level"),
        ("statuses", ["ONLINE"] * 4 + [None], "row 4: unknown status"),
        ("lats", ["a"] * 5, "lat"),
        ("lats", [1.0] * 4, "same length"),
        ("specialties", np.array(["PLUMBER"] * 3 + ["plumber", "X"]), "row 3: unknown specialty"),
        (
            "statuses",
            np.array(["ONLINE", "BUSY", "", "OFFLINE", "ONLINE"]),
            "row 2: unknown status",
        ),
    ]

    def padded(vals: Any) -> Any:
        return (
            np.concatenate([np.repeat(vals[:1], pad), vals])
            if isinstance(vals, np.ndarray)
            else vals[:1] * pad + vals
        )

    def shifted(msg: str) -> str:
        return re.sub(r"row (\d+)", lambda m: f"row {int(m.group(1)) + pad}", msg)

    good = {k: padded(v) for k, v in good.items()}
    for col, vals, msg in bad_cases:
        cols = {**good, col: padded(vals)}
        with pytest.raises(ValueError, match=shifted(msg)):
            idx.upsert_many(ids, **cols)
        assert len(idx) == 1 and all(a not in idx for a in ids)
    with pytest.raises(ValueError, match=shifted("row 2: artisan_id")):
        idx.upsert_many([*ids[: 2 + pad], "", *ids[3 + pad :]], **good)  # type: ignore[arg-type]
    assert len(idx) == 1
    idx.upsert_many(np.array(ids), **{k: np.array(v) for k, v in good.items()})
    assert len(idx) == 6 + pad


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="unknown level"):
        RankingPolicy({"STANDARD": 0.0, "PRO_PLUS": 0.5, "ELITE": 1.0, "GOD": 9.0})
    with pytest.raises(ValueError, match="missing"):
        RankingPolicy({"STANDARD": 0.0})
    with pytest.raises(ValueError, match="finite"):
        RankingPolicy(rating_km_per_star=math.nan)
    with pytest.raises(ValueError, match="finite"):
        RankingPolicy({"STANDARD": 0.0, "PRO_PLUS": math.inf, "ELITE": 1.0})
    p = RankingPolicy.distance_only()
    assert p.rating_km_per_star == 0.0 and set(p.level_bonus_km.values()) == {0.0}
    assert RankingPolicy().score(2.0, "ELITE", 5.0) == 0.5


def test_extra_api_and_ids() -> None:
    idx = ArtisanIndex()
    upper = U.upper()  # not canonical: must be a distinct id, returned verbatim
    _up(idx)
    _up(idx, artisan_id=upper, lat=48.86)
    assert len(idx) == 2 and U in idx and upper in idx and 5 not in idx
    rec = idx.get(upper)
    assert rec is not None and rec.artisan_id == upper and rec.lat == 48.86
    assert idx.get("nope") is None
    assert [c.artisan_id for c in idx.query(48.85, 2.35, "PLUMBER")] == [U, upper]
    assert idx.set_status(U, "BUSY") and not idx.set_status("nope", "BUSY")
    with pytest.raises(ValueError, match="unknown status"):
        idx.set_status(U, "GONE")
    assert [c.artisan_id for c in idx.query(48.85, 2.35, "PLUMBER")] == [upper]
    assert idx.online_count("PLUMBER") == 1
    idx.remove(upper)
    idx.remove("never-there")
    assert idx.query(48.85, 2.35, "PLUMBER") == []
    assert idx.memory_bytes() > 0
    warmup()
