"""The benchmark entry points load and run (they are run by hand, not timed in tests);
the locustfile's users' behaviour is tests/zendo/test_locustfile.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _stdout(*command: str) -> str:
    """What `command` prints, run from the repository (it must succeed)."""
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    ).stdout


def _module_stdout(module: str, *argv: str) -> str:
    return _stdout(sys.executable, "-m", module, *argv)


def test_locustfile_defines_the_three_user_classes() -> None:
    out = _stdout(str(BIN / "locust"), "-f", "benchmarks/locustfile.py", "--list")
    for user_class in ("ArtisanUser", "ClientUser", "AdminUser"):
        assert user_class in out


def test_micro_benchmarks_have_a_cli() -> None:
    for module in (
        "benchmarks.bench_matching",
        "benchmarks.bench_gateway",
        "benchmarks.bench_dispatch",
        "benchmarks.bench_accept",
    ):
        assert "usage" in _module_stdout(module, "--help").lower()


def test_capacity_refuses_bad_arguments_with_a_message() -> None:
    for argv, words in (
        (("--rates", "0,30"), "positive job rates"),
        (("--rates", "fast"), "positive job rates"),
        (("--rates", "30,nan"), "positive job rates"),
        (("--step-s", "5"), "--step-s must exceed"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_capacity", *argv],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, argv
        assert words in done.stderr, (argv, done.stderr)
        assert "Traceback" not in done.stderr


def _bench_json(module: str, *argv: str) -> dict[str, Any]:
    """The final JSON line of a benchmark run against the test database and Redis."""
    return _bench_output(module, *argv)[0]


def _bench_output(module: str, *argv: str) -> tuple[dict[str, Any], str]:
    """A benchmark run against the test database and Redis: its final JSON line, and
    everything it printed."""
    database_url = os.environ.get("ZENDO_TEST_DATABASE_URL", "postgresql:///zendo_test")
    redis_url = os.environ.get("ZENDO_TEST_REDIS_URL", "redis://127.0.0.1:6379/1")
    out = subprocess.run(
        [
            *(sys.executable, "-m", module),
            *("--database-url", database_url, "--redis-url", redis_url, *argv),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
        check=True,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result, out


@pytest.mark.slow
def test_capacity_quick_run_reports_every_step() -> None:
    """`bench_capacity` end to end at a tiny scale against the test database and Redis
    (TRUNCATEd / FLUSHed, as every test's clean_state does). No thresholds on speed:
    the figures depend on the machine; at 2 and 4 jobs/s nothing may fail."""
    result = _bench_json(
        "benchmarks.bench_capacity",
        *("--artisans", "200", "--rates", "2,4", "--step-s", "12", "--warmup-s", "3"),
        *("--flat-sockets", "200", "--flat-s", "2"),
    )
    assert result["speed_ref_bare_frames_per_s"] > 0
    steps = result["steps"]
    assert [s["rate"] for s in steps] == [2.0, 4.0]
    for step in steps:
        assert step["failures"] == 0, step
        assert step["created_per_s"] > 0
        assert step["first_offer_p99_ms"] is not None and step["accept_p99_ms"] is not None
        assert step["server_ms_per_job"] > 0 and step["pg_ms_per_job"] > 0
        assert isinstance(step["held"], bool)
    assert result["held_jobs_per_s"] in (0.0, 2.0, 4.0)


@pytest.mark.slow
def test_cost_model_quick_run_reports_every_figure() -> None:
    """`bench_cost --quick` end to end against the test database (and the bare handlers'
    own beside it) and Redis (TRUNCATEd / FLUSHed, as every test's clean_state does): the
    final JSON line holds every figure, each ratio also round by round. No thresholds:
    the figures depend on the machine."""
    result, printed = _bench_output("benchmarks.bench_cost", "--quick")
    assert result["speed_ref_bare_frames_per_s"] > 0
    assert result["speed_ref_start_frames_per_s"] > 0
    moved = result["speed_ref_bare_frames_per_s"] / result["speed_ref_start_frames_per_s"] - 1
    assert abs(result["speed_drift"] - moved) < 0.01
    assert result["rounds"] == 2
    fix = result["fix"]
    assert fix["accepted"] > 0
    assert len(fix["ratio_by_round"]) == 2 and all(r > 0 for r in fix["ratio_by_round"])
    for key in ("server_us", "redis_us", "pg_us"):
        assert fix[f"{key}_gross"] > 0 and key in fix
    assert result["geoadd"]["redis_us_gross"] > 0 and result["geoadd"]["commands"] > 0
    assert result["bare_loop"]["us_per_frame_gross"] > 0
    assert result["bare_loop"]["flat_frames_per_s"] > 0
    routes = result["routes"]
    assert set(routes) == {
        "login",
        "me",
        "create",
        "get",
        "accept",
        "EN_ROUTE",
        "ARRIVED",
        "IN_PROGRESS",
        "COMPLETED",
    }
    for name, row in routes.items():
        assert row["ok"] > 0 and row["bare_ok"] > 0, name
        assert row["server_us_gross"] > 0 and row["bare_server_us_gross"] > 0, name
        assert "ratio" in row and "pg_us" in row and "redis_us" in row, name
        assert len(row["ratio_by_round"]) == 2, name
        # The bare handler wakes at least for the request's bytes and PostgreSQL's answer.
        assert row["bare_server_slices"] > 1 and "server_slices" in row, name
    job = result["job"]
    assert job["completed"] > 0
    assert job["server_us_gross"] > 0 and job["total_us_gross"] > 0
    assert {"server_fix_vs_bare_frame", "redis_fix_vs_geoadd", "route_accept"} <= set(
        result["ratios"]
    )
    assert all({"limit", "ratio", "met"} <= set(t) for t in result["targets"].values())
    assert result["capacity"]["jobs_per_s_per_server_core"] is not None
    assert "artisans_per_server_core_at_0.25_hz" in result["capacity"]
    # The table gives the fix's ratios gross too: at a low rate per socket the idle
    # reading (heartbeats of silent sockets) can swallow most of the bare loop's net.
    fix_rows = [
        line
        for line in printed.splitlines()
        if line.startswith(("server CPU per accepted fix", "Redis CPU per accepted fix"))
    ]
    assert len(fix_rows) == 2
    gross = result["ratios"]
    assert f"(gross {gross['server_fix_vs_bare_frame_gross']:.2f})" in fix_rows[0]
    assert f"(gross {gross['redis_fix_vs_geoadd_gross']:.2f})" in fix_rows[1]


_SCRAPE = """# HELP zendo_dispatch_first_offer_seconds x
# TYPE zendo_dispatch_first_offer_seconds histogram
zendo_dispatch_first_offer_seconds_bucket{{le="0.01"}} {fast}
zendo_dispatch_first_offer_seconds_bucket{{le="0.025"}} {mid}
zendo_dispatch_first_offer_seconds_bucket{{le="+Inf"}} {all}
zendo_dispatch_first_offer_seconds_count {all}
zendo_dispatch_first_offer_seconds_sum 1.0
"""


@pytest.mark.slow
def test_metrics_diff_reports_the_window_then_the_speed_reference(tmp_path: Path) -> None:
    """The README's load test ends with `metrics_diff`: the server's quantiles between
    two scrapes, then the machine's speed reference measured there and then (the bare
    loop's frames/s; no threshold: it depends on the machine)."""
    before, after = tmp_path / "before.txt", tmp_path / "after.txt"
    before.write_text(_SCRAPE.format(fast=10, mid=10, all=10))
    after.write_text(_SCRAPE.format(fast=100, mid=110, all=110))  # 90 ≤ 10 ms, 10 ≤ 25 ms
    out = _module_stdout("benchmarks.metrics_diff", str(before), str(after)).splitlines()
    assert out[0].startswith("zendo_dispatch_first_offer_seconds: n=100; p50 ≈ 5.6 ms (0–10)")
    assert "> 25 ms: 0" in out[0]
    assert out[-1].startswith("speed reference (bare aiohttp loop, now): ")
    assert int(out[-1].split(": ")[1].split()[0].replace(",", "")) > 0
    skipped = _module_stdout("benchmarks.metrics_diff", str(before), str(after), "--skip-bare")
    assert "speed reference" not in skipped and "n=100" in skipped


def test_metrics_diff_refuses_a_missing_or_foreign_file_with_a_message(tmp_path: Path) -> None:
    scrape = tmp_path / "scrape.txt"
    scrape.write_text(_SCRAPE.format(fast=1, mid=1, all=1))
    foreign = tmp_path / "foreign.txt"
    foreign.write_text("<html>not metrics</html>\n")
    for argv, words in (
        ((str(tmp_path / "absent.txt"), str(scrape)), "cannot read"),
        ((str(scrape), str(foreign)), "is not a /metrics scrape"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.metrics_diff", *argv, "--skip-bare"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2 and words in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and done.stdout == ""
