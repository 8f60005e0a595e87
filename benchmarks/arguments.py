"""Argument types the benchmarks' command lines share: a count or a duration that makes
no sense is refused by argparse with a usage message (exit 2), before anything starts."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TypeVar

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
