"""The benchmark entry points load (they are run by hand, not timed in tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_locustfile_defines_the_three_user_classes() -> None:
    out = subprocess.run(
        [str(BIN / "locust"), "-f", "benchmarks/locustfile.py", "--list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    for user_class in ("ArtisanUser", "ClientUser", "AdminUser"):
        assert user_class in out


def test_micro_benchmarks_have_a_cli() -> None:
    for module in (
        "benchmarks.bench_matching",
        "benchmarks.bench_gateway",
        "benchmarks.bench_dispatch",
    ):
        out = subprocess.run(
            [sys.executable, "-m", module, "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        assert "usage" in out.lower()
