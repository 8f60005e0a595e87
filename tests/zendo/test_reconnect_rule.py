"""The documented reconnect rule: exponential back-off with jitter, honouring hints."""

from __future__ import annotations

import random

from benchmarks import reconnect


def test_back_off_doubles_up_to_the_cap_with_jitter() -> None:
    rng = random.Random(7)
    for attempt, ceiling in ((0, 0.5), (1, 1.0), (3, 4.0), (6, 30.0), (20, 30.0)):
        delays = [reconnect.delay_s(attempt, rng=rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 4  # spread, not in step


def test_the_servers_hint_is_a_floor_and_the_waits_after_it_are_spread() -> None:
    rng = random.Random(11)
    for attempt, hint, low, high in (
        (0, 5.0, 5.0, 6.0),  # the hint rules: spread over the second after it
        (1, 1.0, 1.0, 2.0),
        (6, 20.0, 20.0, 35.0),  # a hint past d/2: spread over d/2 after it
        (8, 1.0, 15.0, 30.0),  # a hint shorter than the back-off: the back-off rules
    ):
        delays = [reconnect.delay_s(attempt, hint, rng=rng) for _ in range(200)]
        assert all(low <= d <= high for d in delays)
        assert max(delays) - min(delays) > (high - low) / 2  # a crowd told "1 s" is spread


def test_hints_are_read_from_retry_after_and_a_1013_reason() -> None:
    assert reconnect.hint_from_headers({"Retry-After": "2"}) == 2.0
    assert reconnect.hint_from_headers({"retry-after": "soon"}) == 0.0
    assert reconnect.hint_from_headers(None) == 0.0
    assert reconnect.hint_from_close_reason(b'{"retry_after_ms": 1500}') == 1.5
    assert reconnect.hint_from_close_reason(b"going away") == 0.0
    assert reconnect.hint_from_close_reason(None) == 0.0
