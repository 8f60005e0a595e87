"""Every Redis key name, in one module. Nothing else formats a key.

All keys share the `zendo:` prefix so a deployment can share a Redis with others.
"""

from __future__ import annotations

PREFIX = "zendo:"


def rate_limit(scope: str, subject: str) -> str:
    """Sorted set of attempt timestamps for one sliding window."""
    return f"{PREFIX}rl:{scope}:{subject}"
