"""The benchmarks' argument types, and each benchmark's command line refusing a count or a
duration that makes no sense with a usage message (exit 2) before anything starts."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.arguments import (
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)

ROOT = Path(__file__).resolve().parents[2]


def test_good_values_pass_through() -> None:
    assert positive_int("3") == 3
    assert non_negative_int("0") == 0
    assert positive_float("0.25") == 0.25
    assert non_negative_float("0") == 0.0


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        (positive_int, "0", "must be at least 1"),
        (positive_int, "-5", "must be at least 1"),
        (positive_int, "2.5", "is not a number"),
        (non_negative_int, "-1", "must be 0 or more"),
        (positive_float, "0", "must be positive"),
        (positive_float, "nan", "not a finite number"),
        (positive_float, "inf", "not a finite number"),
        (positive_float, "fast", "is not a number"),
        (non_negative_float, "-0.5", "must be 0 or more"),
    ],
)
def test_bad_values_are_refused(kind: Callable[[str], object], text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        kind(text)


@pytest.mark.parametrize(
    ("module", "argv", "message"),
    [
        ("benchmarks.bench_storm", ["--sockets", "0"], "argument --sockets: must be at least 1"),
        ("benchmarks.bench_storm", ["--rate", "-3"], "argument --rate: must be positive"),
        ("benchmarks.bench_gateway", ["--workers", "0"], "argument --workers: must be at least 1"),
        (
            "benchmarks.bench_gateway",
            ["--sockets", "10", "--active", "20"],
            "--active (20) cannot exceed --sockets (10)",
        ),
        (
            "benchmarks.bench_storm",
            ["--database-url", "postgresql://localhost"],
            "argument --database-url: postgresql://localhost: name the database in the URL",
        ),
        ("benchmarks.bench_matching", ["--n", "0"], "argument --n: must be at least 1"),
        ("benchmarks.bench_matching", ["--moves", "-1"], "argument --moves: must be 0 or more"),
        (
            "benchmarks.bench_dispatch",
            ["--seed", "/nonexistent", "--rate", "0"],
            "argument --rate: must be positive",
        ),
        ("benchmarks.bench_cost", ["--hz", "nan"], "argument --hz: 'nan' is not a finite number"),
    ],
)
def test_each_benchmark_refuses_a_bad_value_with_a_usage_message(
    module: str, argv: list[str], message: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", module, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
