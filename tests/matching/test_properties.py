"""Property tests: ArtisanIndex.query == plain numpy brute force."""

from __future__ import annotations

import os
import uuid

import h3
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matching import LEVELS, SPECIALTIES, STATUSES, ArtisanIndex, RankingPolicy
from tests.matching.matching_reference import Rec, assert_same, brute, paris_city

# MATCHING_HYPOTHESIS_EXAMPLES=500 for a longer local run
SETTINGS = settings(
    max_examples=int(os.environ.get("MATCHING_HYPOTHESIS_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

_PENTAGONS = [h3.cell_to_latlng(p) for p in h3.get_pentagons(9)]
CENTRES = [
    (48.8566, 2.3522),  # Paris
    (0.0, 179.95),  # antimeridian
    (-12.0, -179.99),
    (89.95, 10.0),  # north pole
    (-89.99, -100.0),  # south pole
    (90.0, 0.0),
    *_PENTAGONS[:4],
]

SPECS = ["PLUMBER", "GLAZIER"]


def _wrap_lon(lon: float) -> float:
    return ((lon + 180.0) % 360.0) - 180.0


def _clamp_lat(lat: float) -> float:
    return max(-90.0, min(90.0, lat))


@st.composite
def policies(draw: st.DrawFn) -> RankingPolicy:
    kind = draw(st.sampled_from(["default", "distance", "random", "huge"]))
    if kind == "default":
        return RankingPolicy()
    if kind == "distance":
        return RankingPolicy.distance_only()
    w = st.floats(-50, 50) if kind == "random" else st.floats(-1e5, 1e5)
    return RankingPolicy(
        level_bonus_km={lvl: draw(w) for lvl in LEVELS}, rating_km_per_star=draw(w)
    )


@st.composite
def cities(draw: st.DrawFn) -> tuple[tuple[float, float], float, dict[str, Rec]]:
    if draw(st.booleans()):
        centre = draw(st.sampled_from(CENTRES))
    else:
        centre = (draw(st.floats(-90, 90)), draw(st.floats(-180, 180)))
    spread = draw(st.sampled_from([0.0005, 0.003, 0.02, 0.1, 1.0, 30.0]))
    n = draw(st.integers(0, 50))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    recs: dict[str, Rec] = {}
    for i in range(n):
        if draw(st.booleans()) or i < 3:
            aid = str(
                uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | int(rng.integers(0, 2**63)))
            )
        else:
            aid = draw(st.sampled_from(["a", "b", "Z-1", "x" * 40, "ÉLITE-7", str(i)])) + str(i)
        if i > 0 and rng.random() < 0.15:  # duplicate position
            prev = recs[next(iter(recs))]
            lat, lon = prev.lat, prev.lon
        else:
            lat = _clamp_lat(centre[0] + rng.normal(0, spread))
            lon = _wrap_lon(centre[1] + rng.normal(0, spread * 1.5))
        recs[aid] = Rec(
            lat,
            lon,
            SPECS[int(rng.integers(0, 2))],
            LEVELS[int(rng.integers(0, 3))],
            float(rng.choice([0.0, 3.5, 4.0, 4.5, 5.0, rng.uniform(0, 5)])),
            STATUSES[int(rng.choice([0, 0, 0, 1, 2]))],
        )
    return centre, spread, recs


@SETTINGS
@given(
    city=cities(),
    policy=policies(),
    data=st.data(),
)
def test_query_matches_brute_force(
    city: tuple[tuple[float, float], float, dict[str, Rec]],
    policy: RankingPolicy,
    data: st.DataObject,
) -> None:
    centre, spread, recs = city
    idx = ArtisanIndex(policy=policy, capacity=4)
    ids = list(recs)
    bulk = data.draw(st.booleans())
    if bulk and ids:
        idx.upsert_many(
            ids,
            [recs[a].lat for a in ids],
            [recs[a].lon for a in ids],
            [recs[a].specialty for a in ids],
            [recs[a].level for a in ids],
            [recs[a].rating for a in ids],
            [recs[a].status for a in ids],
        )
    else:
        for a in ids:
            r = recs[a]
            idx.upsert(a, r.lat, r.lon, r.specialty, r.level, r.rating, r.status)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    # mutations: moves, status changes, removals, re-inserts
    for _ in range(data.draw(st.integers(0, 30))):
        if not ids:
            break
        a = ids[int(rng.integers(0, len(ids)))]
        op = int(rng.integers(0, 5))
        if op == 0 and a in recs:
            r = recs[a]
            r.lat = _clamp_lat(r.lat + rng.normal(0, spread))
            r.lon = _wrap_lon(r.lon + rng.normal(0, spread))
            idx.upsert(a, r.lat, r.lon, r.specialty, r.level, r.rating, r.status)
        elif op == 1 and a in recs:
            r = recs[a]
            r.status = STATUSES[int(rng.integers(0, 3))]
            assert idx.set_status(a, r.status)
        elif op == 2:
            recs.pop(a, None)
            idx.remove(a)
        elif op == 3:
            r = Rec(
                _clamp_lat(centre[0] + rng.normal(0, spread)),
                _wrap_lon(centre[1] + rng.normal(0, spread)),
                SPECS[int(rng.integers(0, 2))],
                LEVELS[int(rng.integers(0, 3))],
                float(rng.uniform(0, 5)),
                "ONLINE",
            )
            recs[a] = r
            idx.upsert(a, r.lat, r.lon, r.specialty, r.level, r.rating, r.status)
        elif op == 4 and a in recs:
            r = recs[a]
            r.specialty = SPECS[int(rng.integers(0, 2))]
            idx.upsert(a, r.lat, r.lon, r.specialty, r.level, r.rating, r.status)
    assert len(idx) == len(recs)
    for a, r in recs.items():
        got = idx.get(a)
        assert got is not None and (got.lat, got.lon, got.status) == (r.lat, r.lon, r.status)
    for _ in range(4):
        qlat = _clamp_lat(centre[0] + rng.normal(0, spread))
        qlon = _wrap_lon(centre[1] + rng.normal(0, spread))
        spec = SPECS[int(rng.integers(0, 2))]
        k = data.draw(st.sampled_from([1, 2, 3, 10, 100]))
        max_km = data.draw(st.sampled_from([0.0, 0.05, 1.0, 15.0, 300.0, 25000.0]))
        excl = set(data.draw(st.lists(st.sampled_from(ids), max_size=5))) if ids else set()
        found = idx.query(qlat, qlon, spec, k=k, max_km=max_km, exclude=excl)
        ref = brute(recs, policy, qlat, qlon, spec, max_km, excl)
        assert_same(found, ref, k)


def test_dense_city_many_queries() -> None:
    """A denser deterministic city: multi-ring walks, escalation, all policies."""
    recs = paris_city(30_000, 1)
    ids = list(recs)
    rng = np.random.default_rng(2)
    for policy in (
        RankingPolicy(),
        RankingPolicy.distance_only(),
        RankingPolicy({"STANDARD": 3.0, "PRO_PLUS": -2.0, "ELITE": 8.0}, -1.5),
        RankingPolicy({"STANDARD": 0.0, "PRO_PLUS": 0.0, "ELITE": 500.0}, 0.0),
    ):
        idx = ArtisanIndex(policy)
        cols = list(
            zip(
                *[(r.lat, r.lon, r.specialty, r.level, r.rating, r.status) for r in recs.values()],
                strict=True,
            )
        )
        idx.upsert_many(ids, *cols)
        for _ in range(40):
            qlat = 48.8566 + rng.normal(0, 0.15)
            qlon = 2.3522 + rng.normal(0, 0.2)
            spec = SPECIALTIES[int(rng.integers(0, 6))]
            k = int(rng.choice([1, 10, 25]))
            max_km = float(rng.choice([0.3, 2.0, 15.0, 80.0]))
            ref = brute(recs, policy, qlat, qlon, spec, max_km, set())
            assert_same(idx.query(qlat, qlon, spec, k=k, max_km=max_km), ref, k)


def test_exact_ties_resolved_by_id() -> None:
    idx = ArtisanIndex(RankingPolicy.distance_only())
    ids = ["zeta", "alpha", str(uuid.UUID(int=5)), str(uuid.UUID(int=3)), "Mid", "0abc"]
    for a in ids:
        idx.upsert(a, 10.0, 10.0, "HEATING", "STANDARD", 4.0, "ONLINE")
    got = idx.query(10.0, 10.0, "HEATING", k=4)
    assert [c.artisan_id for c in got] == sorted(ids)[:4]
    assert all(c.distance_km == 0.0 and c.score == 0.0 for c in got)
    # more ties than the tie buffer holds
    many = [f"id-{i:03d}" for i in range(100)]
    for a in many:
        idx.upsert(a, 10.0, 10.0, "HEATING", "STANDARD", 4.0, "ONLINE")
    got = idx.query(10.0, 10.0, "HEATING", k=7)
    assert [c.artisan_id for c in got] == sorted([*ids, *many])[:7]


def test_empty_and_k_larger_than_eligible() -> None:
    idx = ArtisanIndex()
    assert idx.query(0.0, 0.0, "PLUMBER") == []
    idx.upsert("a", 0.0, 0.0, "PLUMBER", "ELITE", 5.0, "ONLINE")
    idx.upsert("b", 0.0, 0.01, "PLUMBER", "ELITE", 5.0, "BUSY")
    idx.upsert("c", 0.0, 0.02, "LOCKSMITH", "ELITE", 5.0, "ONLINE")
    got = idx.query(0.0, 0.0, "PLUMBER", k=50)
    assert [c.artisan_id for c in got] == ["a"]
    assert got[0].score == -1.5
    assert idx.query(0.0, 0.0, "PLUMBER", exclude=["a"]) == []
    idx.remove("a")
    assert idx.query(0.0, 0.0, "PLUMBER") == []
    assert len(idx) == 2 and "a" not in idx and "b" in idx
