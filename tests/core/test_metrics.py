"""core.metrics: the hot paths' helpers update the same series `labels()` would."""

from __future__ import annotations

import pytest

from core.metrics import Metrics


def _value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_count_request_counts_each_route_and_status_apart() -> None:
    metrics = Metrics.create()
    metrics.count_request("/offers/{id}/accept", 200)
    metrics.count_request("/offers/{id}/accept", 200)
    metrics.count_request("/offers/{id}/accept", 409)
    metrics.count_request("unmatched", 404)
    total = "zendo_http_requests_total"
    assert _value(metrics, total, route="/offers/{id}/accept", status="200") == 2.0
    assert _value(metrics, total, route="/offers/{id}/accept", status="409") == 1.0
    assert _value(metrics, total, route="unmatched", status="404") == 1.0
    assert _value(metrics, total, route="/interventions", status="200") is None


def test_the_kept_child_is_the_series_labels_returns() -> None:
    metrics = Metrics.create()
    metrics.count_request("/auth/me", 200)
    metrics.http_requests.labels(route="/auth/me", status="200").inc()  # the library's path
    metrics.count_request("/auth/me", 200)
    assert _value(metrics, "zendo_http_requests_total", route="/auth/me", status="200") == 3.0
    kept = metrics._child(metrics.http_requests, ("http", "/auth/me", "200"))
    assert kept is metrics.http_requests.labels(route="/auth/me", status="200")


def test_count_offers_updates_both_series_by_n() -> None:
    metrics = Metrics.create(policy="sequential")
    metrics.count_offers("sequential", "taken", 3)
    metrics.count_offers("sequential", "accepted", 1)
    metrics.count_offers("sequential", "taken", 2)
    assert _value(metrics, "zendo_offers_total", outcome="taken") == 5.0
    assert _value(metrics, "zendo_offers_total", outcome="accepted") == 1.0
    policy_offers = "zendo_dispatch_policy_offers_total"
    assert _value(metrics, policy_offers, policy="sequential", outcome="taken") == 5.0
    assert _value(metrics, policy_offers, policy="sequential", outcome="accepted") == 1.0


def test_observe_first_offer_feeds_both_histograms() -> None:
    metrics = Metrics.create(policy="best_accept")
    metrics.observe_first_offer("best_accept", 0.004)
    metrics.observe_first_offer("best_accept", 0.3)
    assert _value(metrics, "zendo_dispatch_first_offer_seconds_count") == 2.0
    assert _value(metrics, "zendo_dispatch_first_offer_seconds_bucket", le="0.005") == 1.0
    by_policy = "zendo_dispatch_policy_first_offer_seconds"
    assert _value(metrics, f"{by_policy}_count", policy="best_accept") == 2.0
    assert _value(metrics, f"{by_policy}_sum", policy="best_accept") == pytest.approx(0.304)
