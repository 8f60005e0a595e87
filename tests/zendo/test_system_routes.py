from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from core.domain import SPECIALTIES


async def test_healthz_and_security_headers(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert "Strict-Transport-Security" not in resp.headers  # plain HTTP here


async def test_readyz_reports_dependencies_and_payments_off(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/readyz")
    assert resp.status == 200
    body = await resp.json()
    assert body["postgres"] == "ok" and body["redis"] == "ok"
    assert body["payments"].startswith("disabled")


async def test_specialties(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/specialties")
    assert await resp.json() == list(SPECIALTIES)


async def test_metrics_exposes_contract_names(client: TestClient[Any, Any]) -> None:
    await client.get("/healthz")
    text = await (await client.get("/metrics")).text()
    for name in (
        "zendo_ws_connections",
        "zendo_pings_accepted_total",
        "zendo_match_seconds",
        "zendo_dispatch_first_offer_seconds",
        "zendo_dispatch_accept_notify_seconds",
        "zendo_event_loop_lag_seconds",
        "zendo_gc_pause_seconds",
        'zendo_http_requests_total{route="/healthz",status="200"}',
    ):
        assert name in text, name


async def test_unknown_route_is_problem_json(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/nope")
    assert resp.status == 404
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    assert body["status"] == 404 and body["code"] == "not_found"
    assert resp.headers["X-Frame-Options"] == "DENY"


async def test_wrong_method_is_problem_json(client: TestClient[Any, Any]) -> None:
    resp = await client.delete("/healthz")
    assert resp.status == 405
    assert (await resp.json())["code"] == "method_not_allowed"


async def test_cors_allows_only_the_allowlist(client: TestClient[Any, Any]) -> None:
    ok = await client.options(
        "/auth/login",
        headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"},
    )
    assert ok.status == 204
    assert ok.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert ok.headers["Access-Control-Allow-Credentials"] == "true"
    bad = await client.options(
        "/auth/login",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert bad.status == 403
    assert "Access-Control-Allow-Origin" not in bad.headers
    plain = await client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in plain.headers


async def test_the_pool_is_sized_by_the_settings(
    settings: Any, clean_state: None, aiohttp_client: Any
) -> None:
    from core import appkeys
    from zendo.app import create_app

    app = create_app(settings.replace(pg_pool_max_size=3, run_background=False))
    await aiohttp_client(app)
    assert app[appkeys.PG_POOL].get_max_size() == 3


async def test_every_response_carries_a_request_id(client: TestClient[Any, Any]) -> None:
    first = (await client.get("/healthz")).headers["X-Request-Id"]
    second = (await client.get("/healthz")).headers["X-Request-Id"]
    assert len(first) == len(second) == 16 and int(first, 16) >= 0
    assert first != second
    assert first[:8] == second[:8]  # the process's prefix, then a counter
    given = await client.get("/healthz", headers={"X-Request-Id": "trace-123"})
    assert given.headers["X-Request-Id"] == "trace-123"
    long = await client.get("/healthz", headers={"X-Request-Id": "x" * 100})
    assert long.headers["X-Request-Id"] == "x" * 64
