"""The pure policy core on hand-made timelines: no I/O, the decisions themselves."""

from __future__ import annotations

from collections.abc import Generator
from typing import cast

import pytest

from core.settings import Settings, SettingsError
from dispatch.policies import (
    ArtisanHistory,
    Ask,
    BatchedParams,
    FairParams,
    Found,
    JobState,
    Policy,
    Verdict,
    fair_order,
    make_policy,
    step,
)
from matching import ArtisanIndex, Candidate, RankingPolicy

TIMEOUT, RADIUS = 20.0, 10.0


def policy(name: str, **kw: object) -> Policy:
    return make_policy(name, offer_timeout_s=TIMEOUT, radius_km=RADIUS, **kw)  # type: ignore[arg-type]


def run(
    p: Policy, now: float, job: JobState, answers: list[Found], *, offering: bool = True
) -> tuple[list[Ask], Verdict]:
    """Drive one step, answering its asks in turn; the asks and the verdict."""
    plan: Generator[Ask, Found, Verdict] = step(
        p, now, job, search_window_s=120.0, recheck_s=1.0, offering=offering
    )
    asks: list[Ask] = []
    try:
        asks.append(next(plan))
        for found in answers:
            asks.append(plan.send(found))
    except StopIteration as done:
        return asks, done.value
    raise AssertionError(f"the step asked more than answered: {asks}")


NEW = JobState(created_at=100.0, search_started_at=100.0, search_round=0)


# ---- sequential: today's cascade -------------------------------------------------------------
def test_sequential_offers_the_best_one_then_waits_for_its_expiry() -> None:
    asks, verdict = run(policy("sequential"), 100.0, NEW, [Found(1)])
    assert asks == [Ask(0, RADIUS, 1)]
    assert verdict == Verdict(0, 100.0 + TIMEOUT, sent=1)


def test_sequential_sends_nothing_while_its_offer_is_pending() -> None:
    job = JobState(100.0, 100.0, 0, pending_expiries=(120.0,), last_offer_at=100.0, asked=1)
    asks, verdict = run(policy("sequential"), 105.0, job, [])
    assert asks == [] or asks[0].n == 0
    assert verdict.next_check_at == 120.0


def test_sequential_on_decline_asks_the_next_and_batch_tops_up() -> None:
    p = policy("sequential", offer_batch=3)
    job = JobState(100.0, 100.0, 0, pending_expiries=(120.0, 121.0), last_offer_at=101.0, asked=3)
    asks, verdict = run(p, 110.0, job, [Found(1)])
    assert asks == [Ask(0, RADIUS, 1)]  # one declined of three: one more
    assert verdict.next_check_at == 120.0


def test_sequential_widens_once_to_twice_the_radius_then_gives_up() -> None:
    asks, verdict = run(policy("sequential"), 100.0, NEW, [Found(0), Found(0)])
    assert asks == [Ask(0, RADIUS, 1), Ask(1, 2 * RADIUS, 1)]
    assert verdict.give_up and verdict.search_round == 1
    # Already widened: no second widening.
    widened = JobState(100.0, 100.0, 1, asked=2)
    asks, verdict = run(policy("sequential"), 150.0, widened, [Found(0)])
    assert asks == [Ask(1, 2 * RADIUS, 1)] and verdict.give_up


def test_a_busy_candidate_means_look_again_until_the_search_window_ends() -> None:
    _asks, verdict = run(policy("sequential"), 100.0, NEW, [Found(0, waiting=True), Found(0)])
    assert verdict == Verdict(1, 101.0)  # re-check in recheck_s
    _, late = run(policy("sequential"), 221.0, NEW, [Found(0, waiting=True), Found(0)])
    assert late.give_up  # 121 s after the search began


# ---- staggered --------------------------------------------------------------------------------
def test_staggered_sends_a_wave_then_the_next_after_the_delay() -> None:
    p = policy("staggered")
    asks, verdict = run(p, 100.0, NEW, [Found(3)])
    assert asks == [Ask(0, RADIUS, 3)]
    assert verdict.next_check_at == 105.0  # the next wave, before the offers expire
    job = JobState(100.0, 100.0, 0, pending_expiries=(120.0,) * 3, last_offer_at=100.0, asked=3)
    asks, verdict = run(p, 103.0, job, [])
    assert asks == [] and verdict.next_check_at == 105.0  # too early for a wave
    asks, verdict = run(p, 105.0, job, [Found(3)])
    assert asks == [Ask(0, RADIUS, 3)] and verdict.next_check_at == 110.0


def test_staggered_widens_step_by_step() -> None:
    p = policy("staggered")
    asks, verdict = run(p, 100.0, NEW, [Found(0), Found(0), Found(0)])
    assert [a.radius_km for a in asks] == [RADIUS, 1.5 * RADIUS, 2 * RADIUS]
    assert verdict.give_up and verdict.search_round == 2


def test_staggered_wave_that_finds_nobody_waits_a_delay_not_a_busy_loop() -> None:
    p = policy("staggered")
    job = JobState(100.0, 100.0, 0, pending_expiries=(120.0,), last_offer_at=100.0, asked=1)
    asks, verdict = run(p, 106.0, job, [Found(0)])
    assert asks == [Ask(0, RADIUS, 3)]
    assert verdict.next_check_at == 111.0


# ---- best_accept ------------------------------------------------------------------------------
def test_best_accept_holds_accepts_and_the_best_score_wins() -> None:
    p = policy("best_accept")
    assert p.accept_window_s == 2.0
    assert run(p, 100.0, NEW, [Found(3)])[0] == [Ask(0, RADIUS, 3)]
    assert p.award([("b", 1.2), ("a", 0.4), ("c", 3.0)]) == "a"
    assert p.award([("b", 0.4), ("a", 0.4)]) == "a"  # a tie: by id
    assert policy("staggered").accept_window_s == 0.0


# ---- batched ----------------------------------------------------------------------------------
def test_batched_sends_only_on_its_tick() -> None:
    p = policy("batched")
    assert p.first_wave == 0 and p.batch_interval_s == 2.0
    asks, verdict = run(p, 101.3, NEW, [], offering=False)
    assert asks == [] and verdict.next_check_at == 102.0  # the next tick
    asks, verdict = run(p, 102.0, NEW, [Found(1)])
    assert asks == [Ask(0, RADIUS, 1)] and verdict.next_check_at == 102.0 + TIMEOUT


def test_batched_assignment_beats_first_come_first_served() -> None:
    # Artisan a sits between the two jobs, b is 2 km beyond job 1. First come, first
    # served gives a to job 1 and b (5 km away) to job 2: 1 + 5 km. The batch gives b
    # to job 1 and a to job 2: 2 + 3 km.
    index = ArtisanIndex(RankingPolicy.distance_only())
    km = 1 / 111.2  # degrees of latitude per km
    index.upsert("a", 48.85 + 1 * km, 2.35, "PLUMBER", "STANDARD", 4.0, "ONLINE")
    index.upsert("b", 48.85 - 2 * km, 2.35, "PLUMBER", "STANDARD", 4.0, "ONLINE")
    jobs = [("j1", 48.85, 2.35, "PLUMBER"), ("j2", 48.85 + 4 * km, 2.35, "PLUMBER")]
    greedy = index.query(48.85, 2.35, "PLUMBER", k=1)[0].artisan_id
    assert greedy == "a"
    got = index.assign(jobs, k=2, max_km=10.0)
    assert {j: c.artisan_id for j, c in got.items() if c} == {"j1": "b", "j2": "a"}
    # The artisans already asked for a job are left out for it.
    got = index.assign(jobs, k=2, max_km=10.0, exclude_per_job={"j1": ["b"]})
    assert got["j1"] is not None and got["j1"].artisan_id == "a" and got["j2"] is not None


# ---- fair -------------------------------------------------------------------------------------
def test_fair_caps_merit_so_the_nearer_standard_artisan_comes_first() -> None:
    elite = Candidate("elite", 1.1, 1.1 - 1.5)  # ELITE 5.0: 1.5 km of bonus
    near = Candidate("near", 0.1, 0.1)
    assert policy("sequential").order(0.0, [elite, near]) == [elite, near]
    ranked = policy("fair").order(0.0, [elite, near], {})
    assert [c.artisan_id for c in ranked] == ["near", "elite"]


def test_fair_idle_bonus_and_acceptance_term() -> None:
    p = FairParams()
    now = 10 * 3600.0
    a = Candidate("busy-lately", 1.0, 1.0)
    b = Candidate("idle", 1.8, 1.8)
    history = {
        "busy-lately": ArtisanHistory(last_job_ended_at=now - 60.0, offers=10, accepted=10),
        "idle": ArtisanHistory(last_job_ended_at=now - 3 * 3600.0, offers=10, accepted=10),
    }
    assert [c.artisan_id for c in fair_order(now, [a, b], history, p)] == ["idle", "busy-lately"]
    # Refusing offers costs, but only past min_offers.
    history["idle"] = ArtisanHistory(now - 3 * 3600.0, offers=10, accepted=2)
    assert [c.artisan_id for c in fair_order(now, [a, b], history, p)] == ["busy-lately", "idle"]
    history["idle"] = ArtisanHistory(now - 3 * 3600.0, offers=4, accepted=0)
    assert [c.artisan_id for c in fair_order(now, [a, b], history, p)] == ["idle", "busy-lately"]


# ---- parameters and settings ------------------------------------------------------------------
def test_parameters_are_typed_and_checked() -> None:
    assert policy("batched", params=BatchedParams(interval_s=5.0)).batch_interval_s == 5.0
    with pytest.raises(ValueError, match="takes BatchedParams"):
        policy("batched", params=FairParams())
    with pytest.raises(ValueError, match="unknown dispatch policy"):
        policy("greedy")
    with pytest.raises(AttributeError):
        cast(FairParams, policy("fair").params).window_s = 1.0  # type: ignore[misc]


def test_zendo_dispatch_policy_is_read_and_checked() -> None:
    env = {"ZENDO_JWT_SECRET": "x" * 40}
    assert Settings.from_env(env).dispatch_policy == "sequential"
    assert Settings.from_env({**env, "ZENDO_DISPATCH_POLICY": "fair"}).dispatch_policy == "fair"
    with pytest.raises(SettingsError, match="ZENDO_DISPATCH_POLICY"):
        Settings.from_env({**env, "ZENDO_DISPATCH_POLICY": "random"})
