"""HTTP routes of the ops context (ADMIN only; also enforced by prefix)."""

from __future__ import annotations

from aiohttp import web

from core.errors import FieldError, ValidationFailed
from core.guards import requires_role
from core.jsonutil import json_response
from dispatch.artisans.routes import path_uuid
from dispatch.ops import service

routes = web.RouteTableDef()
DEFAULT_WINDOW_S = 3600
MIN_WINDOW_S = 60
MAX_WINDOW_S = 7 * 86400


@routes.get("/admin/interventions/{intervention_id}/timeline")
@requires_role("ADMIN")
async def timeline(request: web.Request) -> web.Response:
    intervention_id = path_uuid(request, "intervention_id")
    return json_response(await service.timeline(request.app, intervention_id))


@routes.get("/admin/kpis")
@requires_role("ADMIN")
async def kpis(request: web.Request) -> web.Response:
    raw = request.query.get("window_s")
    window_s = DEFAULT_WINDOW_S
    if raw is not None:
        try:
            window_s = int(raw)
        except ValueError:
            window_s = 0
        if not MIN_WINDOW_S <= window_s <= MAX_WINDOW_S:
            raise ValidationFailed(
                [
                    FieldError(
                        "window_s", f"must be an integer between {MIN_WINDOW_S} and {MAX_WINDOW_S}"
                    )
                ]
            )
    return json_response(await service.kpis(request.app, window_s))


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
