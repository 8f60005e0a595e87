"""The client's reconnect rule (README, "Reconnecting"), as the load generators follow it.

After the n-th failed attempt in a row (n = 0 for the first), with
d = min(CAP_S, BASE_S * 2**n), wait a random time in [d/2, d]; when the server gave a
hint h longer than d/2 (the `Retry-After` header of a 503, or `retry_after_ms` in the
JSON reason of a 1013 close), a random time in [h, h + max(d/2, HINT_SPREAD_S)]
instead. n starts again at 0 once a socket got its `hello`. Spread this way, 10,000
apps that lost their sockets at once come back over seconds instead of all in the same
instant; and never before the server's hint, but not all at it either: a Retry-After
is whole seconds, so the clients refused in the same second are given the same one,
and waiting exactly that long, they would all come back in the same instant.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping

BASE_S = 0.5
CAP_S = 30.0
# Waits that honour a hint are spread over at least this long after it (a Retry-After's
# whole second).
HINT_SPREAD_S = 1.0


def delay_s(attempt: int, hint_s: float = 0.0, rng: random.Random | None = None) -> float:
    """Seconds to wait after the `attempt`-th failed attempt in a row (0 for the first),
    given the server's hint (0 when none)."""
    ceiling = min(CAP_S, BASE_S * 2**attempt)
    uniform = (rng or random).uniform
    if hint_s > ceiling / 2:
        return uniform(hint_s, hint_s + max(ceiling / 2, HINT_SPREAD_S))
    return uniform(ceiling / 2, ceiling)


def hint_from_headers(headers: Mapping[str, str] | None) -> float:
    """Seconds from a `Retry-After` header (0 when absent or not a number)."""
    for name, value in (headers or {}).items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return 0.0
    return 0.0


def hint_from_close_reason(reason: bytes | str | None) -> float:
    """Seconds from a 1013 close reason `{"retry_after_ms": N}` (0 when absent)."""
    try:
        data = json.loads(reason or b"")
        return max(0.0, float(data["retry_after_ms"]) / 1000)
    except (ValueError, TypeError, KeyError):
        return 0.0
