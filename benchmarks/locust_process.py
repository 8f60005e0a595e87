"""The locust process's own tuning: a load generator on the same two cores as the server
it measures must spend as little CPU as it can, and must not pause. Imported by
benchmarks/locustfile.py, whose `init` event installs these."""

from __future__ import annotations

import gc
from typing import Any

import gevent
import gevent.resolver.blocking
from locust import events
from locust.env import Environment


@events.init.add_listener
def _resolve_in_line(environment: Environment, **_kwargs: Any) -> None:
    """gevent resolves names on a thread pool by default, even an IP literal. Every
    artisan opens a new HTTP connection per job (its keep-alive one timed out long
    before), and the hand-offs to that pool took a fifth of locust's CPU: CPU that the
    server it measures shares. The host is an address or a local name: resolve in line."""
    gevent.get_hub().resolver = gevent.resolver.blocking.Resolver()


@events.init.add_listener
def _no_gc(environment: Environment, **_kwargs: Any) -> None:
    """Locust holds as many sockets as the server: CPython's own GC trigger stopped every
    greenlet for 30-300 ms, which would be read as server latency, and young collections
    on a clock (the server's policy, gateway/gcpacer.py) cost locust a tenth of its CPU,
    CPU that the server it measures shares. A load generator lives for minutes and makes
    little cyclic garbage: no collections at all."""
    gc.freeze()
    gc.disable()
