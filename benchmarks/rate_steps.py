"""What the stepped load test and its driver agree on, without importing locust (which
patches gevent into whatever imports it): the settling time of a step and the rate list."""

from __future__ import annotations

import math

# Each step's first seconds let the previous step's jobs finish and the new clients find
# their phase; its statistics cover the rest.
SETTLE_S = 7.0


def parse_rates(text: str) -> tuple[float, ...]:
    """'30,45,60' -> (30.0, 45.0, 60.0); ValueError unless every rate is a positive
    finite number (an empty text is no steps at all)."""
    try:
        rates = tuple(float(x) for x in text.split(",") if x)
    except ValueError:
        raise ValueError(f"positive job rates, comma-separated (got {text!r})") from None
    if any(not math.isfinite(r) or r <= 0 for r in rates):
        raise ValueError(f"positive job rates, comma-separated (got {text!r})")
    return rates
