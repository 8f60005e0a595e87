"""Liveness, readiness, metrics, specialties and the OpenAPI document."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from core import appkeys
from core.appkeys import METRICS
from core.domain import SPECIALTIES
from core.jsonutil import json_response
from zendo.openapi import build_spec
from zendo.system.runtime import runtime_ctx

routes = web.RouteTableDef()
_PROBE_TIMEOUT_S = 2.0


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def _check_postgres(app: web.Application) -> str:
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT_S):
            await app[appkeys.PG_POOL].fetchval("SELECT 1")
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"


async def _check_redis(app: web.Application) -> str:
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT_S):
            await app[appkeys.REDIS].ping()
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    postgres, redis = await asyncio.gather(_check_postgres(request.app), _check_redis(request.app))
    ready = postgres == "ok" and redis == "ok"
    settings = request.app[appkeys.SETTINGS]
    body = {
        "status": "ready" if ready else "unavailable",
        "postgres": postgres,
        "redis": redis,
        "payments": "enabled"
        if settings.payments_enabled
        else "disabled: STRIPE_API_KEY is not set",
    }
    return json_response(body, status=200 if ready else 503)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    payload = generate_latest(request.app[METRICS].registry)
    return web.Response(body=payload, headers={"Content-Type": CONTENT_TYPE_LATEST})


@routes.get("/specialties")
async def specialties(request: web.Request) -> web.Response:
    return json_response(list(SPECIALTIES))


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return json_response(build_spec())


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
    app.cleanup_ctx.append(runtime_ctx)
