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
    readable_file,
    seed_file,
    tcp_port,
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
            ["--rate", "0", "--seed", "/nonexistent"],
            "argument --rate: must be positive",
        ),
        (
            "benchmarks.bench_dispatch",
            ["--seed", "/nonexistent/seed.jsonl"],
            "argument --seed: /nonexistent/seed.jsonl: No such file or directory",
        ),
        (
            "benchmarks.wire_latency",
            ["--from-file", "/nonexistent/capture.txt"],
            "argument --from-file: /nonexistent/capture.txt: No such file or directory",
        ),
        ("benchmarks.wire_latency", ["--port", "70000"], "a port is 1 to 65535 (got 70000)"),
        ("benchmarks.bench_accept", ["--connections", "0"], "argument --connections: must be"),
        (
            "benchmarks.bench_capacity",
            ["--database-url", "postgresql://"],
            "argument --database-url: postgresql://: name the database in the URL",
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


def test_ports_and_files(tmp_path: Path) -> None:
    assert tcp_port("8080") == 8080
    for bad, message in (("0", "1 to 65535"), ("http", "not a port number")):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            tcp_port(bad)
    there = tmp_path / "capture.txt"
    there.write_text("")
    assert readable_file(str(there)) == str(there)
    with pytest.raises(argparse.ArgumentTypeError, match="Is a directory"):
        readable_file(str(tmp_path))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"role": "CLIENT"}\nnot json\n', "line 2: not JSON"),
        ('{"role": "CLIENT"}\n\n["CLIENT"]\n', "line 3: a user has a role"),
        ('{"email": "a@b.example"}\n', "line 1: a user has a role"),
    ],
)
def test_a_seed_file_that_is_not_one_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "seed.jsonl"
    path.write_text(text)
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        seed_file(str(path))


def test_a_seed_file_without_clients_is_refused_by_bench_dispatch(tmp_path: Path) -> None:
    path = tmp_path / "seed.jsonl"
    path.write_text('{"role": "ARTISAN", "id": "a"}\n\n')
    assert seed_file(str(path)) == [{"role": "ARTISAN", "id": "a"}]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_dispatch", "--seed", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--seed: the file needs both artisans and clients" in done.stderr
    assert "Traceback" not in done.stderr
