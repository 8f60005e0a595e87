"""bench_matching's references: the memory's (one chain through every slot, timed per
load) and the splits of a cold query."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.bench_matching import _chase_jit, chase_cycle, floors, memory_latency_ns
from benchmarks.matching_data import make_data, make_queries
from matching import ArtisanIndex, RankingPolicy


def test_the_chain_visits_every_slot_once_before_it_comes_back() -> None:
    n = 10_000
    nxt = chase_cycle(n)
    seen = np.zeros(n, dtype=bool)
    i = 0
    for _ in range(n):
        assert not seen[i]
        seen[i] = True
        i = int(nxt[i])
    assert i == 0 and seen.all()


def test_the_compiled_chase_ends_where_the_chain_does() -> None:
    nxt = chase_cycle(1_000)
    i = 0
    for _ in range(1_234):
        i = int(nxt[i])
    assert _chase_jit(nxt, 1_234) == i
    assert _chase_jit(nxt, 1_000) == 0  # a whole cycle


def test_the_latency_is_a_positive_time_per_load() -> None:
    ns = memory_latency_ns(mib=1, steps=10_000)
    assert math.isfinite(ns) and 0 < ns < 1e6


@pytest.mark.parametrize(("mib", "steps"), [(0, 10), (1, 0), (-1, 10)])
def test_an_empty_chain_or_no_step_is_refused_before_any_load(mib: int, steps: int) -> None:
    # the compiled chase does not check bounds: an empty chain must never reach it
    with pytest.raises(ValueError, match="mib >= 1 and steps >= 1"):
        memory_latency_ns(mib=mib, steps=steps)


def test_the_floors_time_every_split_of_a_cold_query(capsys: pytest.CaptureFixture[str]) -> None:
    """`floors` prints one timed line per split, the cold query with only its data cold
    among them (no figures asserted: they are the machine's)."""
    data = make_data(3_000, seed=2)
    big = ArtisanIndex(RankingPolicy())
    small = ArtisanIndex(RankingPolicy())
    cols = ("ids", "lat", "lon", "spec", "level", "rating", "status")
    big.upsert_many(*(data[c] for c in cols))
    small.upsert_many(*(data[c][:300] for c in cols))
    queries = make_queries(data, 5, seed=3)
    floors(big, small, queries, np.ones(1 << 12))
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" wall ")[0].strip() for line in lines] == [
        "cold, kernel call alone",
        "cold, a 2,000-artisan index's query",
        "cold, query, its code warmed",
        "cold, an empty Python function",
        "idle, a 2,000-artisan index's query",
        "idle, an empty Python function",
        "idle, 10 tuples (str, float, float)",
    ]
    assert all(" µs" in line and "p99" in line for line in lines)
