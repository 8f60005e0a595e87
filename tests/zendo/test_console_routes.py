"""The console's files: served from the package with their own CSP; the API keeps the
contract's; the page's own origin may open /ws whatever ZENDO_CORS_ORIGINS lists."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import asyncpg
from aiohttp.test_utils import TestClient

from core.settings import Settings
from tests.factories import bearer, create_user, token_for

CONSOLE_FILES = {
    "/console": "text/html",
    "/console/console.js": "text/javascript",
    "/console/console-map.js": "text/javascript",
    "/console/console-panels.js": "text/javascript",
    "/console/console.css": "text/css",
    "/console/service-areas.geojson": "application/geo+json",
}


async def test_console_files_carry_a_csp_allowing_only_their_own_origin(
    client: TestClient[Any, Any],
) -> None:
    for path, media_type in CONSOLE_FILES.items():
        resp = await client.get(path)
        assert resp.status == 200, path
        assert resp.content_type == media_type
        csp = resp.headers["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["default-src"] == "'none'"
        assert directives["script-src"] == "'self'"
        assert directives["connect-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'"
        assert "unsafe" not in csp
        assert resp.headers["X-Frame-Options"] == "DENY"
    page = await (await client.get("/console")).text()
    for testid in ("login-email", "login-password", "login-submit", "map", "timeline"):
        assert f'data-testid="{testid}"' in page
    assert "<script>" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    areas = json.loads(await (await client.get("/console/service-areas.geojson")).read())
    assert areas["type"] == "FeatureCollection"


async def test_api_responses_keep_the_contract_csp(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/specialties")
    assert resp.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"


async def test_ws_accepts_its_own_origin_and_refuses_others(
    client: TestClient[Any, Any], db: asyncpg.Connection, settings: Settings
) -> None:
    admin = await create_user(db, role="ADMIN")
    token = token_for(settings, admin, "ADMIN")
    own = f"http://{client.server.host}:{client.server.port}"
    assert own not in settings.cors_origins
    ws = await client.ws_connect("/ws", headers={**bearer(token), "Origin": own})
    hello = await ws.receive_json(timeout=3)
    assert hello["type"] == "hello"
    await ws.close()
    for origin in ("http://evil.example", f"https://{client.server.host}:{client.server.port}"):
        try:
            await client.ws_connect("/ws", headers={**bearer(token), "Origin": origin})
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 403
        else:
            raise AssertionError(f"{origin} was let in")
