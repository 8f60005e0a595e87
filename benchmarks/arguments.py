"""Argument types the benchmarks' command lines share: a count, a duration, a port or a
file that makes no sense is refused by argparse with a usage message (exit 2), before
anything starts."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from typing import Any, TypeVar

N = TypeVar("N", int, float)


def _at_least(kind: Callable[[str], N], low: N, *, strict: bool, rule: str) -> Callable[[str], N]:
    """An argparse type: `kind(text)`, finite, and above `low` (`strict`) or at least it."""

    def parse(text: str) -> N:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"must be {rule} (got {value:g})")
        return value

    return parse


positive_int = _at_least(int, 1, strict=False, rule="at least 1")
non_negative_int = _at_least(int, 0, strict=False, rule="0 or more")
positive_float = _at_least(float, 0.0, strict=True, rule="positive")
non_negative_float = _at_least(float, 0.0, strict=False, rule="0 or more")


def tcp_port(text: str) -> int:
    """argparse type: a TCP port, 1 to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1 to 65535 (got {value})")
    return value


def readable_file(text: str) -> str:
    """argparse type: the path of a file this process can read."""
    try:
        with open(text, "rb"):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"{text}: {exc.strerror}") from None
    return text


def seed_file(text: str) -> list[dict[str, Any]]:
    """argparse type: the users of a `zendo seed --out` JSON-lines file, one object with
    a `role` a line (blank lines skipped)."""
    rows: list[dict[str, Any]] = []
    with open(readable_file(text), encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"{text}, line {number}: not JSON (a `zendo seed --out` file?)"
                ) from None
            if not isinstance(row, dict) or not isinstance(row.get("role"), str):
                raise argparse.ArgumentTypeError(f"{text}, line {number}: a user has a role")
            rows.append(row)
    return rows
