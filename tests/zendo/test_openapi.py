"""The OpenAPI document and the router must describe the same API."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from zendo.openapi import build_spec

_IGNORED_METHODS = {"HEAD", "OPTIONS", "*"}


def _router_operations(app: web.Application) -> set[tuple[str, str]]:
    ops = set()
    for route in app.router.routes():
        if route.method in _IGNORED_METHODS:
            continue
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if path is None:
            continue
        # aiohttp `{id:regex}` placeholders -> OpenAPI `{id}`
        path = re.sub(r"\{(\w+):[^}]+\}", r"{\1}", path)
        ops.add((route.method.lower(), path))
    return ops


def _spec_operations(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in spec["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }


async def test_every_route_is_documented_and_every_documented_route_exists(
    app: web.Application,
) -> None:
    spec = build_spec()
    router_ops = _router_operations(app)
    spec_ops = _spec_operations(spec)
    assert router_ops - spec_ops == set(), "routes missing from the OpenAPI document"
    assert spec_ops - router_ops == set(), "documented routes that do not exist"


async def test_openapi_json_is_served(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    body = await resp.json()
    assert body["openapi"] == "3.1.0"
    assert "/healthz" in body["paths"]
