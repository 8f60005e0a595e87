"""Issue 18, smaller items: /metrics behind ZENDO_METRICS_TOKEN, /readyz without
internals, an access log without signed tokens."""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from core.settings import Settings
from tests.factories import bearer
from tests.helpers import StartApp
from tests.ports import free_port
from zendo.middleware import JsonAccessLogger

TOKEN = "metrics-" + "m" * 32


async def test_metrics_token_protects_metrics_when_set(
    start_app: StartApp, settings: Settings
) -> None:
    client = await start_app(settings.replace(metrics_token=TOKEN))
    for headers in ({}, bearer("wrong"), bearer(TOKEN + "x"), {"Authorization": TOKEN}):
        resp = await client.get("/metrics", headers=headers)
        assert resp.status == 401, headers
        problem = await resp.json()
        assert problem["code"] == "invalid_metrics_token"
        assert "zendo_" not in json.dumps(problem)
    resp = await client.get("/metrics", headers=bearer(TOKEN))
    assert resp.status == 200 and "zendo_http_requests_total" in await resp.text()
    # the token is a secret: masked in the settings' repr
    assert TOKEN not in repr(settings.replace(metrics_token=TOKEN))


async def test_metrics_answer_503_when_the_pools_directory_is_gone(
    start_app: StartApp, settings: Settings, tmp_path: Any
) -> None:
    client = await start_app(settings.replace(metrics_dir=str(tmp_path / "removed")))
    resp = await client.get("/metrics")
    assert resp.status == 503
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    assert (await resp.json())["code"] == "unavailable"
    assert (await client.get("/healthz")).status == 200


def test_metrics_token_is_read_from_the_environment(tmp_path: Any) -> None:
    env = {"ZENDO_JWT_SECRET": "j" * 40, "ZENDO_STATE_DIR": str(tmp_path)}
    assert Settings.from_env(env).metrics_token == ""
    assert Settings.from_env({**env, "ZENDO_METRICS_TOKEN": TOKEN}).metrics_token == TOKEN


async def test_readyz_names_no_exception_when_a_dependency_is_down(
    start_app: StartApp, settings: Settings
) -> None:
    client = await start_app(settings)
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 200 and (body["postgres"], body["redis"]) == ("ok", "ok")
    # a Redis that is not there (nothing listens at its address)
    down = await start_app(settings.replace(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    resp = await down.get("/readyz")
    body = await resp.json()
    assert resp.status == 503
    assert body["redis"] == "unavailable" and body["postgres"] == "ok"
    assert "Error" not in json.dumps(body)


async def test_the_access_log_writes_the_route_template_not_the_token(
    settings: Settings, clean_state: None, caplog: pytest.LogCaptureFixture
) -> None:
    from zendo.app import create_app

    app = create_app(settings.replace(run_background=False))
    runner = web.AppRunner(app, access_log_class=JsonAccessLogger, handle_signals=False)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    secret_token = "s1gned-" + "t" * 40
    try:
        with caplog.at_level(logging.INFO, logger="aiohttp.access"):
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
                for path in (
                    f"/storage/download/{secret_token}?sig=abc",
                    "/no/such/route/" + secret_token,
                    "/healthz",
                ):
                    async with http.get(path) as resp:
                        await resp.read()
    finally:
        await runner.cleanup()
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "aiohttp.access"]
    assert [line["path"] for line in lines] == [
        "/storage/download/{token}",
        "unmatched",
        "/healthz",
    ]
    assert secret_token not in caplog.text
