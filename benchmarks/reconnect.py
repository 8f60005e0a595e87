"""The client's reconnect rule (README, "Reconnecting"), as the load generators follow it.

After the n-th failed attempt in a row (n = 0 for the first), wait a random time in
[d/2, d] with d = min(CAP_S, BASE_S * 2**n), and never less than the server's hint: the
`Retry-After` header of a 503 refused before the upgrade, or `retry_after_ms` in the
JSON reason of a 1013 close. n starts again at 0 once a socket got its `hello`.
Spread this way, 10,000 apps that lost their sockets at once come back over seconds
instead of all in the same instant.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping

BASE_S = 0.5
CAP_S = 30.0


def delay_s(attempt: int, hint_s: float = 0.0, rng: random.Random | None = None) -> float:
    ceiling = min(CAP_S, BASE_S * 2**attempt)
    jittered = (rng or random).uniform(ceiling / 2, ceiling)
    return max(hint_s, jittered)


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
