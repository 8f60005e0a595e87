"""Liveness, readiness, metrics, specialties and the OpenAPI document."""

from __future__ import annotations

import asyncio
import logging
import secrets

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from core import appkeys
from core.appkeys import METRICS
from core.domain import SPECIALTIES
from core.errors import Unauthorized
from core.guards import bearer_token
from core.jsonutil import json_response
from zendo.admission import ADMISSION_METRICS
from zendo.openapi import build_spec
from zendo.system.runtime import runtime_ctx

log = logging.getLogger("zendo.http")
routes = web.RouteTableDef()
_PROBE_TIMEOUT_S = 2.0
# What /readyz says of a dependency that failed: the cause goes to the log only (an
# exception's name tells a caller about the internals).
_DOWN = "unavailable"


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def _check_postgres(app: web.Application) -> str:
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT_S):
            await app[appkeys.PG_POOL].fetchval("SELECT 1")
        return "ok"
    except Exception as exc:
        log.warning("readiness: PostgreSQL unavailable: %r", exc)
        return _DOWN


async def _check_redis(app: web.Application) -> str:
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT_S):
            await app[appkeys.REDIS].ping()
        return "ok"
    except Exception as exc:
        log.warning("readiness: Redis unavailable: %r", exc)
        return _DOWN


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
    """With ZENDO_METRICS_TOKEN set, only `Authorization: Bearer <that token>` reads it."""
    expected = request.app[appkeys.SETTINGS].metrics_token
    if expected:
        presented = bearer_token(request) or ""
        if not secrets.compare_digest(presented.encode(), expected.encode()):
            raise Unauthorized("/metrics needs the metrics token", code="invalid_metrics_token")
    request.app[ADMISSION_METRICS].sync()
    payload = request.app[METRICS].exposition()
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
