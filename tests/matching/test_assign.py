"""ArtisanIndex.assign: optimal against brute-force enumeration, and its bad inputs."""

from __future__ import annotations

import os
import uuid
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matching import LEVELS, ArtisanIndex, Candidate, RankingPolicy, store, walk
from matching.assign import solve
from matching.kernels_assign import k_components
from tests.matching.matching_reference import Rec, brute

SETTINGS = settings(
    max_examples=int(os.environ.get("MATCHING_HYPOTHESIS_EXAMPLES", "80")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
SPECS = ("PLUMBER", "GLAZIER")
TOL = 1e-9


def _best(options: list[list[Candidate]]) -> tuple[int, float]:
    """(jobs served, total score) of the best assignment, by enumerating all of them."""
    best = (0, 0.0)

    def walk(j: int, used: frozenset[str], served: int, total: float) -> None:
        nonlocal best
        if j == len(options):
            if served > best[0] or (served == best[0] and total < best[1]):
                best = (served, total)
            return
        walk(j + 1, used, served, total)  # job j gets nobody
        for c in options[j]:
            if c.artisan_id not in used:
                walk(j + 1, used | {c.artisan_id}, served + 1, total + c.score)

    walk(0, frozenset(), 0, 0.0)
    return best


def _check(got: dict[str, Candidate | None], options: dict[str, list[Candidate]]) -> None:
    """``got`` is a valid assignment over ``options`` and as good as the brute force."""
    assert set(got) == set(options)
    chosen = [c.artisan_id for c in got.values() if c is not None]
    assert len(chosen) == len(set(chosen)), got
    for job, c in got.items():
        if c is not None:
            ref = {o.artisan_id: o for o in options[job]}
            assert c.artisan_id in ref, (job, c, options[job])
            assert abs(c.score - ref[c.artisan_id].score) <= TOL
            assert abs(c.distance_km - ref[c.artisan_id].distance_km) <= TOL
    served, total = _best(list(options.values()))
    got_total = sum(c.score for c in got.values() if c is not None)
    assert len(chosen) == served, (got, options)
    assert abs(got_total - total) <= TOL * max(1.0, abs(total)), (got_total, total, got)


@st.composite
def scenes(draw: st.DrawFn) -> tuple[dict[str, Rec], list[tuple[str, float, float, str]]]:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    centre = draw(st.sampled_from([(48.8566, 2.3522), (0.0, 179.99), (-33.9, 18.4)]))
    spread = draw(st.sampled_from([0.002, 0.01, 0.05]))
    n = draw(st.integers(0, 9))
    recs: dict[str, Rec] = {}
    for i in range(n):
        aid = str(uuid.UUID(int=int(rng.integers(0, 2**62)))) if i % 3 else f"side-{i}"
        if recs and rng.random() < 0.2:  # same position as another artisan
            prev = recs[next(iter(recs))]
            lat, lon = prev.lat, prev.lon
        else:
            lat = centre[0] + float(rng.normal(0, spread))
            lon = ((centre[1] + float(rng.normal(0, spread)) + 180.0) % 360.0) - 180.0
        recs[aid] = Rec(
            lat,
            lon,
            SPECS[int(rng.integers(0, 2))],
            LEVELS[int(rng.integers(0, 3))],
            float(rng.choice([4.0, 5.0, rng.uniform(0, 5)])),
            "ONLINE" if rng.random() < 0.85 else "BUSY",
        )
    jobs = [
        (
            f"job-{j}",
            centre[0] + float(rng.normal(0, spread)),
            ((centre[1] + float(rng.normal(0, spread)) + 180.0) % 360.0) - 180.0,
            SPECS[int(rng.integers(0, 2))],
        )
        for j in range(draw(st.integers(0, 5)))
    ]
    return recs, jobs


def _index(recs: dict[str, Rec], policy: RankingPolicy) -> ArtisanIndex:
    idx = ArtisanIndex(policy, capacity=4)
    for a, r in recs.items():
        idx.upsert(a, r.lat, r.lon, r.specialty, r.level, r.rating, r.status)
    return idx


@SETTINGS
@given(
    scene=scenes(),
    k=st.integers(1, 4),
    max_km=st.sampled_from([0.5, 2.0, 15.0]),
    policy=st.sampled_from([RankingPolicy(), RankingPolicy.distance_only()]),
    n_excl=st.integers(0, 2),
)
def test_assign_is_optimal_over_each_jobs_top_k(
    scene: tuple[dict[str, Rec], list[tuple[str, float, float, str]]],
    k: int,
    max_km: float,
    policy: RankingPolicy,
    n_excl: int,
) -> None:
    recs, jobs = scene
    excl = set(list(recs)[:n_excl])
    got = _index(recs, policy).assign(jobs, k=k, max_km=max_km, exclude=excl)
    options = {
        j: brute(recs, policy, lat, lon, spec, max_km, excl)[:k] for j, lat, lon, spec in jobs
    }
    _check(got, options)


@SETTINGS
@given(scene=scenes(), max_km=st.sampled_from([2.0, 15.0]))
def test_k_at_least_the_jobs_is_optimal_over_every_eligible_artisan(
    scene: tuple[dict[str, Rec], list[tuple[str, float, float, str]]], max_km: float
) -> None:
    recs, jobs = scene
    policy = RankingPolicy()
    got = _index(recs, policy).assign(jobs, k=max(1, len(jobs)), max_km=max_km)
    every = {j: brute(recs, policy, lat, lon, spec, max_km, set()) for j, lat, lon, spec in jobs}
    _check(got, every)


@SETTINGS
@given(
    rows=st.lists(
        st.lists(
            st.tuples(st.sampled_from("abcdefg"), st.floats(-20.0, 20.0)),
            max_size=5,
            unique_by=lambda t: t[0],
        ),
        max_size=6,
    )
)
def test_solve_on_arbitrary_candidate_lists(rows: list[list[tuple[str, float]]]) -> None:
    """Scores of any sign, shared artisans, jobs with nobody, each list ranked as query
    ranks: solve() == enumeration."""
    ranked = (sorted(row, key=lambda t: (t[1], abs(t[1]), t[0])) for row in rows)
    cands = [[Candidate(a, abs(s), s) for a, s in row] for row in ranked]
    choice = solve(cands)
    got = {f"j{j}": (cands[j][i] if i >= 0 else None) for j, i in enumerate(choice)}
    _check(got, {f"j{j}": row for j, row in enumerate(cands)})


def _components_reference(job: list[int], col: list[int], n_jobs: int) -> list[set[int]]:
    """Connected components of the jobs, two jobs joined when they list one column."""
    comps: list[set[int]] = []
    for j in range(n_jobs):
        cols = {c for jj, c in zip(job, col, strict=True) if jj == j}
        joined = [x for x in comps if x & {-1 - c for c in cols}]
        merged = {j} | {-1 - c for c in cols}
        for x in joined:
            merged |= x
            comps.remove(x)
        comps.append(merged)
    return [{x for x in comp if x >= 0} for comp in comps]


@SETTINGS
@given(
    rows=st.lists(st.lists(st.integers(0, 30), max_size=6, unique=True), min_size=1, max_size=25)
)
def test_components_kernel_against_a_reference(rows: list[list[int]]) -> None:
    """k_components: each job's component (its smallest job), each candidate's row and
    column within it, and the candidates grouped by component in a stable order."""
    # columns numbered in order of first appearance, as solve() numbers artisans
    number: dict[int, int] = {}
    col = [number.setdefault(a, len(number)) for row in rows for a in row]
    job = [j for j, row in enumerate(rows) for _ in row]
    if not col:
        return
    n_jobs, n_cols = len(rows), len(number)
    root, row, local, order, jobs_in, cols_in, start = k_components(
        np.array(job, dtype=np.int64), np.array(col, dtype=np.int64), n_jobs, n_cols
    )
    for comp in _components_reference(job, col, n_jobs):
        r = min(comp)
        members = sorted(comp)
        assert [int(root[j]) for j in members] == [r] * len(members)
        assert jobs_in[r] == len(members)
        cols = sorted({c for j, c in zip(job, col, strict=True) if j in comp})
        assert cols_in[r] == len(cols)
        took = [int(p) for p in order[start[r] : start[r + 1]]]
        assert took == [p for p, j in enumerate(job) if j in comp]  # stable: job order
        for p in took:
            assert row[p] == members.index(job[p])
            assert local[p] == cols.index(col[p])
    assert start[-1] == len(job)


# ---------------------------------------------------------------- fixed cases


def _line_index(points: dict[str, float], policy: RankingPolicy | None = None) -> ArtisanIndex:
    """Artisans on the equator, ``points`` = longitude per id (0.01° ≈ 1.11 km)."""
    idx = ArtisanIndex(policy or RankingPolicy.distance_only())
    for a, lon in points.items():
        idx.upsert(a, 0.0, lon, "PLUMBER", "STANDARD", 4.0, "ONLINE")
    return idx


def test_beats_greedy_where_greedy_is_worse() -> None:
    idx = _line_index({"A": 0.009, "B": -0.005})
    jobs = [("j1", 0.0, 0.0, "PLUMBER"), ("j2", 0.0, 0.01, "PLUMBER")]
    got = idx.assign(jobs, k=2, max_km=15.0)
    # greedy gives j1 its nearest, A (1.0 km), leaving j2 with B (1.67 km)
    assert got["j1"] is not None and got["j1"].artisan_id == "B"
    assert got["j2"] is not None and got["j2"].artisan_id == "A"


def test_serving_more_jobs_wins_over_a_lower_total() -> None:
    idx = _line_index({"A": 0.0, "B": 0.1})
    # j1 sees A (0 km) and B (11.12 km); j2 sees only A (0.11 km): both must be served
    got = idx.assign([("j1", 0.0, 0.0, "PLUMBER"), ("j2", 0.0, -0.001, "PLUMBER")], max_km=11.2)
    assert got["j2"] is not None and got["j2"].artisan_id == "A"
    assert got["j1"] is not None and got["j1"].artisan_id == "B"


def test_nobody_left_gives_none() -> None:
    idx = _line_index({"A": 0.0})
    jobs = [
        ("j1", 0.0, 0.0, "PLUMBER"),
        ("j2", 0.0, 0.0001, "PLUMBER"),
        ("j3", 0.0, 0.0, "HEATING"),
    ]
    got = idx.assign(jobs, k=3)
    assert got["j3"] is None
    assert [got["j1"], got["j2"]].count(None) == 1
    assert {c.artisan_id for c in (got["j1"], got["j2"]) if c is not None} == {"A"}
    assert got["j1"] is not None and got["j1"].artisan_id == "A"  # 0 km against 11 m
    assert got["j2"] is None


def test_exclusions_common_and_per_job() -> None:
    idx = _line_index({"A": 0.0, "B": 0.001, "C": 0.002})
    jobs = [("j1", 0.0, 0.0, "PLUMBER"), ("j2", 0.0, 0.0, "PLUMBER")]
    got = idx.assign(jobs, k=3, exclude={"A"}, exclude_per_job={"j1": ["B"]})
    assert got["j1"] is not None and got["j1"].artisan_id == "C"
    assert got["j2"] is not None and got["j2"].artisan_id == "B"
    got = idx.assign(jobs, k=3, exclude=iter(["A", "B"]))  # a one-shot iterator, used for both
    assert {c.artisan_id for c in got.values() if c is not None} == {"C"}
    assert list(got.values()).count(None) == 1


def test_empty_and_single() -> None:
    idx = _line_index({"A": 0.0})
    assert idx.assign([]) == {}
    got = idx.assign([("only", 0.0, 0.0, "PLUMBER")], k=1)
    assert got == {"only": Candidate("A", 0.0, 0.0)}
    assert idx.assign([("only", 0.0, 0.0, "PLUMBER")], 1, 15.0, ["A"]) == {"only": None}
    assert ArtisanIndex().assign([("x", 1.0, 1.0, "PLUMBER")]) == {"x": None}


@pytest.mark.parametrize(
    ("jobs", "kwargs", "message"),
    [
        ([("j", 0.0, 0.0, "PLUMBER"), ("j", 0.0, 0.1, "PLUMBER")], {}, "duplicate job ids"),
        ([("j", 0.0, 0.0)], {}, "expected \\(job_id, lat, lon, specialty\\)"),
        (["j-0.0-0.0-PLUMBER"], {}, "expected"),
        ([("j", 0.0, 0.0, "ROOFER")], {}, "unknown specialty"),
        ([("j", 91.0, 0.0, "PLUMBER")], {}, "lat"),
        ([("j", 0.0, float("nan"), "PLUMBER")], {}, "lon"),
        ([("j", 0.0, 0.0, "PLUMBER")], {"k": 0}, "k"),
        ([("j", 0.0, 0.0, "PLUMBER")], {"max_km": -1.0}, "max_km"),
        ([("j", 0.0, 0.0, "PLUMBER")], {"exclude": "A"}, "not a str"),
        ([("j", 0.0, 0.0, "PLUMBER")], {"exclude_per_job": {"j": "A"}}, "not a str"),
    ],
)
def test_bad_input_raises_value_error(
    jobs: list[Any], kwargs: dict[str, Any], message: str
) -> None:
    idx = _line_index({"A": 0.0})
    with pytest.raises(ValueError, match=message):
        idx.assign(jobs, **kwargs)


def test_batched_queries_fall_back_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """A job whose tree search gives up (full heap) is ranked by the brute-force kernel."""
    monkeypatch.setattr(walk, "HEAP_CAP", 2)
    monkeypatch.setattr(store, "HEAP_CAP", 2)
    rng = np.random.default_rng(3)
    recs = {
        f"a{i}": Rec(
            48.85 + float(rng.normal(0, 0.02)), 2.35 + float(rng.normal(0, 0.03)),
            "PLUMBER", LEVELS[i % 3], float(rng.uniform(0, 5)), "ONLINE",
        )
        for i in range(300)
    }  # fmt: skip
    policy = RankingPolicy()
    jobs = [("j1", 48.85, 2.35, "PLUMBER"), ("j2", 48.851, 2.351, "PLUMBER")]
    got = _index(recs, policy).assign(jobs, k=3, exclude_per_job={"j2": ["a0"]})
    options = {
        "j1": brute(recs, policy, 48.85, 2.35, "PLUMBER", 15.0, set())[:3],
        "j2": brute(recs, policy, 48.851, 2.351, "PLUMBER", 15.0, {"a0"})[:3],
    }
    _check(got, options)
