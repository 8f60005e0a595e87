"""Prometheus metrics; names fixed by CONTRACT §6. One registry per app so tests stay isolated.

In a worker pool (`zendo serve --workers N`) the supervisor gives its workers a shared
directory (PROMETHEUS_MULTIPROC_DIR, which prometheus_client reads when imported): each
process's values live in files there, and `/metrics`, whichever worker answers it, adds
up the whole pool's (prometheus_client's multiprocess mode). Counters and histograms are
summed, a dead worker's included, so they never go backwards; gauges say how they combine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TypeVar, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.multiprocess import MultiProcessCollector

from core.errors import ServiceUnavailable

M = TypeVar("M", bound=MetricWrapperBase)
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(frozen=True, slots=True)
class Metrics:
    registry: CollectorRegistry
    ws_connections: Gauge
    ws_refused: Counter
    ws_hello_seconds: Histogram
    pings_accepted: Counter
    pings_rejected: Counter
    match_seconds: Histogram
    first_offer_seconds: Histogram
    accept_notify_seconds: Histogram
    offers: Counter
    http_requests: Counter
    loop_lag_seconds: Histogram
    gc_pause_seconds: Histogram
    # Beyond CONTRACT §6 (whose series keep their labels): the same dispatch figures
    # with the `policy` label (ZENDO_DISPATCH_POLICY), and which policy runs.
    policy_info: Gauge
    policy_first_offer_seconds: Histogram
    policy_offers: Counter
    # zendo/admission.py: copied there from the admission state, off the request path.
    admission_limit: Gauge
    admission_in_flight: Gauge
    admission_refused: Counter
    # zendo/headroom.py's limit on new jobs a second (0: none)
    new_job_rate_limit: Gauge
    # 1 in each process: a pool's /metrics says how many of its workers are live.
    workers: Gauge
    # The pool's shared directory ("" in a process of its own): see the module docstring.
    multiprocess_dir: str = ""
    # The labelled series the hot paths update, by label values: `labels()` validates and
    # looks the child up under a lock on every call (an accept's metrics, caches cold: 43
    # against 28 µs with the children kept in a pool, 29 against 20 in one process).
    # Label values come from finite sets (route templates, statuses, outcomes, the
    # policy), so this stays small.
    _children: dict[tuple[str, ...], MetricWrapperBase] = field(default_factory=dict, repr=False)

    @classmethod
    def create(cls, policy: str = "sequential", multiprocess_dir: str = "") -> Metrics:
        registry = CollectorRegistry(auto_describe=True)
        info = Gauge(
            "zendo_dispatch_policy_info",
            "The dispatch policy this process runs (value 1)",
            ["policy"],
            registry=registry,
            multiprocess_mode="livemax",  # every worker runs the same policy
        )
        info.labels(policy=policy).set(1)
        workers = Gauge(
            "zendo_workers",
            "Processes serving (each says 1; a pool's are summed over its live workers)",
            registry=registry,
            multiprocess_mode="livesum",
        )
        workers.set(1)
        return cls(
            registry=registry,
            ws_connections=Gauge(
                "zendo_ws_connections",
                "Open WebSocket connections",
                registry=registry,
                multiprocess_mode="livesum",
            ),
            ws_refused=Counter(
                "zendo_ws_refused",
                "WebSocket handshakes refused before the upgrade for load",
                registry=registry,
            ),
            ws_hello_seconds=Histogram(
                "zendo_ws_hello_seconds",
                "WebSocket handshake admitted to hello sent (with first-frame auth, the"
                " client's frame included)",
                buckets=(*_LATENCY_BUCKETS, 5.0, 10.0),
                registry=registry,
            ),
            pings_accepted=Counter(
                "zendo_pings_accepted", "Location fixes accepted", registry=registry
            ),
            pings_rejected=Counter(
                "zendo_pings_rejected",
                "Location fixes rejected or dropped",
                ["reason"],
                registry=registry,
            ),
            match_seconds=Histogram(
                "zendo_match_seconds",
                "Time to rank candidates for a job",
                buckets=(0.00001, 0.000025, 0.00005, 0.0001, 0.00025, *_LATENCY_BUCKETS),
                registry=registry,
            ),
            first_offer_seconds=Histogram(
                "zendo_dispatch_first_offer_seconds",
                "Intervention created to first offer sent",
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            accept_notify_seconds=Histogram(
                "zendo_dispatch_accept_notify_seconds",
                "Offer accept received to its frames handed to the sockets (or their node's channel)",
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            offers=Counter("zendo_offers", "Offers by outcome", ["outcome"], registry=registry),
            http_requests=Counter(
                "zendo_http_requests",
                "HTTP requests by route and status",
                ["route", "status"],
                registry=registry,
            ),
            loop_lag_seconds=Histogram(
                "zendo_event_loop_lag_seconds",
                "How late the event loop runs a timer (sampled every 25 ms)",
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            gc_pause_seconds=Histogram(
                "zendo_gc_pause_seconds",
                "Garbage collection pauses, by generation",
                ["generation"],
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            policy_info=info,
            workers=workers,
            policy_first_offer_seconds=Histogram(
                "zendo_dispatch_policy_first_offer_seconds",
                "Intervention created to first offer sent, by dispatch policy",
                ["policy"],
                buckets=(*_LATENCY_BUCKETS, 5.0, 10.0),
                registry=registry,
            ),
            policy_offers=Counter(
                "zendo_dispatch_policy_offers",
                "Offers by dispatch policy and outcome",
                ["policy", "outcome"],
                registry=registry,
            ),
            admission_limit=Gauge(
                "zendo_admission_limit",
                "Requests in flight past which new work is refused (the adaptive limit;"
                " a pool's is the sum of its workers')",
                registry=registry,
                multiprocess_mode="livesum",
            ),
            admission_in_flight=Gauge(
                "zendo_admission_in_flight",
                "HTTP requests being handled, and offers being answered over sockets",
                registry=registry,
                multiprocess_mode="livesum",
            ),
            admission_refused=Counter(
                "zendo_admission_refused",
                "Requests answered 503 overloaded by admission control (handshakes refused"
                " for sockets still opening: zendo_ws_refused)",
                ["reason"],
                registry=registry,
            ),
            new_job_rate_limit=Gauge(
                "zendo_new_job_rate_limit",
                "New jobs a second past which they are refused while the machine's cores are"
                " busy past ZENDO_CPU_BUSY_LIMIT (0: not limited; a pool's is the sum)",
                registry=registry,
                multiprocess_mode="livesum",
            ),
            multiprocess_dir=multiprocess_dir,
        )

    def count_request(self, route: str, status: int) -> None:
        """zendo_http_requests{route, status} += 1 (`route`: the matched template)."""
        self._child(self.http_requests, ("http", route, str(status))).inc()

    def count_offers(self, policy: str, outcome: str, n: int) -> None:
        """zendo_offers{outcome} and zendo_dispatch_policy_offers{policy, outcome} += n."""
        self._child(self.offers, ("offers", outcome)).inc(n)
        self._child(self.policy_offers, ("policy_offers", policy, outcome)).inc(n)

    def observe_first_offer(self, policy: str, seconds: float) -> None:
        """Creation to first offer, into both first-offer histograms."""
        self.first_offer_seconds.observe(seconds)
        self._child(self.policy_first_offer_seconds, ("first_offer", policy)).observe(seconds)

    def _child(self, metric: M, key: tuple[str, ...]) -> M:
        """`metric.labels(*key[1:])`, looked up once per key (key[0] names the metric)."""
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*key[1:])
        return cast(M, child)

    def exposition(self) -> bytes:
        """The text `/metrics` answers: this process's registry, or in a worker pool
        the whole pool's (read from the shared directory's files when asked)."""
        if not self.multiprocess_dir:
            return generate_latest(self.registry)
        if not os.path.isdir(self.multiprocess_dir):  # removed under the running pool
            raise ServiceUnavailable("The worker pool's metrics directory is gone")
        pool = CollectorRegistry()
        MultiProcessCollector(pool, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(pool)
