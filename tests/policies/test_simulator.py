"""The simulator's invariants, determinism, report and command line."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path

import pytest

from core.settings import DISPATCH_POLICIES, Settings
from dispatch.interventions.statemachine import (
    ARRIVED,
    ASSIGNED,
    CANCELLED,
    COMPLETED,
    EN_ROUTE,
    IN_PROGRESS,
    SEARCHING,
    UNFULFILLED,
    is_allowed,
)
from dispatch.policies import make_policy
from dispatch.simulate import ScenarioError, load_scenario, simulate, write_report
from dispatch.simulate.report import gini, summary
from dispatch.simulate.runner import run
from dispatch.simulate.scenario import Shift
from zendo.cli import main

# Three hours with supply short enough that every path shows up (withdrawals, waits,
# UNFULFILLED, clients giving up).
SMALL = replace(
    load_scenario("builtin:paris-day"),
    hours=3.0,
    artisans=replace(
        load_scenario("builtin:paris-day").artisans, count=150, shifts=(Shift(0.5, 4.0, 1.0),)
    ),
    demand=replace(load_scenario("builtin:paris-day").demand, jobs=400, patience_s=300.0),
    behaviour=replace(load_scenario("builtin:paris-day").behaviour, withdrawal=0.2),
)
KEYS = {
    "jobs", "assigned", "unfulfilled", "time_to_first_offer_s", "time_to_assign_s",
    "pickup_km", "offers_per_job", "acceptance_rate", "withdrawals", "utilization",
    "earnings_gini",
}  # fmt: skip
ROLE = {UNFULFILLED: "SYSTEM", CANCELLED: "CLIENT"}


def policy(name: str):  # type: ignore[no-untyped-def]
    return make_policy(name, offer_timeout_s=20.0, radius_km=15.0)


@pytest.fixture(scope="module", params=DISPATCH_POLICIES)
def sim_run(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    return simulate(SMALL, policy(request.param), seed=7)


def test_every_job_ends_completed_unfulfilled_or_cancelled_through_legal_moves(sim_run) -> None:  # type: ignore[no-untyped-def]
    for job in sim_run.jobs:
        assert job.status in (COMPLETED, UNFULFILLED, CANCELLED)
        path = job.history
        assert path[0] == SEARCHING
        for frm, to in itertools.pairwise(path):
            assert is_allowed(frm, to, ROLE.get(to, "ARTISAN")), (frm, to, path)
        if job.status == COMPLETED:
            assert path[-5:] == [ASSIGNED, EN_ROUTE, ARRIVED, IN_PROGRESS, COMPLETED]


def test_no_artisan_holds_two_jobs_and_no_job_two_artisans(sim_run) -> None:  # type: ignore[no-untyped-def]
    holders: dict[int, list[tuple[float, float]]] = {}
    for art in sim_run.artisans:
        spans = sorted((start, end) for _job, start, end in art.tenures)
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, f"artisan {art.idx} held two jobs at once"
        for job, start, end in art.tenures:
            holders.setdefault(job, []).append((start, end))
    for spans in holders.values():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end  # a withdrawn job's next artisan comes after
    # One accepted offer per job (a withdrawn one becomes DECLINED, as live), and it is
    # the artisan who completed it.
    accepted: dict[int, list[int]] = {}
    for offer in sim_run.offers:
        if offer.status == "ACCEPTED":
            accepted.setdefault(offer.job, []).append(offer.artisan)
    for job in sim_run.jobs:
        if job.status == COMPLETED:
            assert accepted[job.idx] == [job.artisan]
        else:
            assert len(accepted.get(job.idx, [])) <= 1


def test_counts_add_up(sim_run) -> None:  # type: ignore[no-untyped-def]
    row = summary(sim_run)
    assert set(row) == KEYS
    final = {
        s: sum(1 for j in sim_run.jobs if j.status == s)
        for s in (COMPLETED, UNFULFILLED, CANCELLED)
    }
    assert sum(final.values()) == row["jobs"] == 400
    assert row["unfulfilled"] == final[UNFULFILLED]
    assert row["assigned"] >= final[COMPLETED]
    assert row["assigned"] + row["unfulfilled"] + final[CANCELLED] >= row["jobs"]
    assert row["offers_per_job"] == pytest.approx(len(sim_run.offers) / 400, abs=1e-3)
    assert 0 <= row["acceptance_rate"] <= 1 and 0 <= row["utilization"] <= 1
    assert row["withdrawals"] == sim_run.withdrawals > 0
    q = row["time_to_assign_s"]
    assert q["p50"] <= q["p90"] <= q["p99"]


def test_same_seed_same_report_and_another_seed_another(tmp_path: Path) -> None:
    runs = [simulate(SMALL, policy(n), seed=3) for n in ("sequential", "best_accept")]
    write_report(tmp_path / "a", "small", 3, runs)
    again = [simulate(SMALL, policy(n), seed=3) for n in ("sequential", "best_accept")]
    write_report(tmp_path / "b", "small", 3, again)
    assert (tmp_path / "a/report.json").read_bytes() == (tmp_path / "b/report.json").read_bytes()
    other = [simulate(SMALL, policy(n), seed=4) for n in ("sequential", "best_accept")]
    write_report(tmp_path / "c", "small", 4, other)
    a = json.loads((tmp_path / "a/report.json").read_text())["policies"]
    c = json.loads((tmp_path / "c/report.json").read_text())["policies"]
    assert a != c


def test_the_report_has_the_contract_keys_the_table_and_the_plots(tmp_path: Path) -> None:
    runs = [simulate(SMALL, policy(n), seed=1) for n in ("sequential", "fair")]
    report = write_report(tmp_path, "small", 1, runs)
    assert list(report["policies"]) == ["sequential", "fair"]
    for row in report["policies"].values():
        assert set(row) == KEYS
        for key in ("time_to_first_offer_s", "time_to_assign_s", "pickup_km"):
            assert set(row[key]) == {"p50", "p90", "p99"}
    md = (tmp_path / "report.md").read_text()
    assert "| metric | sequential | fair |" in md and "| earnings_gini |" in md
    for png in ("time_to_assign_by_hour.png", "unfulfilled_by_hour.png", "earnings_lorenz.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gini() -> None:
    assert gini([1.0, 1.0, 1.0]) == pytest.approx(0.0)
    assert gini([0.0, 0.0, 0.0, 12.0]) == pytest.approx(0.75)
    assert gini([]) == 0.0


def test_scenario_files_are_read_and_bad_ones_refused(tmp_path: Path) -> None:
    good = tmp_path / "s.yaml"
    good.write_text(
        "name: tiny\nhours: 2\nartisans: {count: 30}\n"
        "demand: {jobs: 20, areas: [{h3: 881fb46625fffff, weight: 1}]}\n"
        "travel: {speed_kmh: 20}\n"
    )
    s = load_scenario(str(good))
    assert (s.name, s.hours, s.artisans.count, s.demand.jobs) == ("tiny", 2.0, 30, 20)
    assert s.demand.areas[0].radius_km > 0
    cases = {
        "hours: -1\n": "hours",
        "unknown_key: 1\n": "unknown scenario keys",
        "artisans: {specialties: {ASTRONAUT: 1}}\n": "unknown specialties",
        "demand: {by_hour: [1, 2]}\n": "24 weights",
        "behaviour: {accept: 2}\n": "probabilities",
        "demand: {areas: [{h3: nope}]}\n": "H3",
        "[1, 2\n": "not valid YAML",
        "- 1\n": "a mapping",
        "artisans: {count: many}\n": "invalid scenario",
    }
    for text, message in cases.items():
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(ScenarioError, match=message):
            load_scenario(str(bad))
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(str(tmp_path / "missing.yaml"))
    with pytest.raises(ScenarioError, match="no built-in"):
        load_scenario("builtin:tokyo-night")


def test_runner_uses_the_operator_settings(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "hours: 1\nartisans: {count: 60, shifts: [{start_hour: 0, hours: 2, share: 1}]}\n"
        "demand: {jobs: 40}\n"
    )
    tight = Settings(jwt_secret="x" * 40, match_radius_km=0.5)
    wide = Settings(jwt_secret="x" * 40, match_radius_km=15.0)
    narrow = run(
        tight,
        scenario=str(scenario),
        policies=["sequential"],
        seed=1,
        out=tmp_path / "n",
        progress=False,
    )
    broad = run(
        wide,
        scenario=str(scenario),
        policies=["sequential"],
        seed=1,
        out=tmp_path / "w",
        progress=False,
    )
    assert (
        narrow["policies"]["sequential"]["unfulfilled"]
        > broad["policies"]["sequential"]["unfulfilled"]
    )


def test_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ZENDO_JWT_SECRET", "x" * 40)
    monkeypatch.setenv("ZENDO_STATE_DIR", str(tmp_path / "state"))
    scenario = tmp_path / "s.yaml"
    scenario.write_text("hours: 1\nartisans: {count: 40}\ndemand: {jobs: 30}\n")
    out = tmp_path / "out"
    code = main(
        [
            "simulate",
            "--scenario",
            str(scenario),
            "--policies",
            "sequential,batched",
            "--seed",
            "2",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    assert list(json.loads((out / "report.json").read_text())["policies"]) == [
        "sequential",
        "batched",
    ]
    assert "report:" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("hours: 0\n")
    assert main(["simulate", "--scenario", str(bad), "--out", str(out)]) == 2
    assert "hours" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--policies", "sequential,greedy", "--out", str(out)])
    assert exc.value.code == 2
    assert "unknown policy greedy" in capsys.readouterr().err
