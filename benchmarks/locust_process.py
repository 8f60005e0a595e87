"""The locust process's own tuning: a load generator on the same two cores as the server
it measures must spend as little CPU as it can, and must not pause. Imported by
benchmarks/locustfile.py, whose `init` event installs these."""

from __future__ import annotations

import gc
import select
from typing import Any

import gevent
import gevent.monkey
import gevent.resolver.blocking
import geventhttpclient.connectionpool
from locust import events
from locust.env import Environment


@events.init.add_listener
def _resolve_in_line(environment: Environment, **_kwargs: Any) -> None:
    """gevent resolves names on a thread pool by default, even an IP literal. Every
    artisan opens a new HTTP connection per job (its keep-alive one timed out long
    before), and the hand-offs to that pool took a fifth of locust's CPU: CPU that the
    server it measures shares. The host is an address or a local name: resolve in line."""
    gevent.get_hub().resolver = gevent.resolver.blocking.Resolver()


_real_poll = gevent.monkey.get_original("select", "poll")


def idle_socket_alive(_pool: Any, sock: Any) -> bool:
    """An idle keep-alive socket is reusable when it has nothing to read (no FIN, no
    stray bytes). The same test as geventhttpclient's, with poll() for its select():
    select() raises ValueError for a descriptor past 1023 (FD_SETSIZE), which
    geventhttpclient 2.6 takes for a dead socket. With 10,000 WebSockets open every
    pooled HTTP socket is past 1023, so every request opened a new connection (93 % of
    them, 230/s) where a real app reuses its own; the server accepts one connection per
    loop turn and they queued for up to a second. Also, gevent's select() yields to the
    hub even with a zero timeout; the real poll() does not."""
    if sock is None or sock.fileno() < 0:
        return False
    poller = _real_poll()
    poller.register(sock.fileno(), select.POLLIN)
    return not poller.poll(0)


@events.init.add_listener
def _keep_alive_past_fd_1023(environment: Environment, **_kwargs: Any) -> None:
    # a deliberate patch of the library's method (see idle_socket_alive)
    geventhttpclient.connectionpool.ConnectionPool._is_socket_alive = idle_socket_alive  # type: ignore[method-assign,assignment]


@events.init.add_listener
def _no_gc(environment: Environment, **_kwargs: Any) -> None:
    """Locust holds as many sockets as the server: CPython's own GC trigger stopped every
    greenlet for 30-300 ms, which would be read as server latency, and young collections
    on a clock (the server's policy, gateway/gcpacer.py) cost locust a tenth of its CPU,
    CPU that the server it measures shares. A load generator lives for minutes and makes
    little cyclic garbage: no collections at all."""
    gc.freeze()
    gc.disable()
