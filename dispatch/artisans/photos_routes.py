"""Intervention photo routes (owned by the artisans context, under /interventions)."""

from __future__ import annotations

import uuid

from aiohttp import web

from core.errors import NotFound
from core.guards import authenticate, requires_auth, requires_role
from core.jsonutil import json_response, read_json
from dispatch.artisans import photos
from dispatch.artisans.schemas import NewPhoto

routes = web.RouteTableDef()


def _uuid(request: web.Request, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError as exc:
        raise NotFound("No such resource") from exc


@routes.post("/interventions/{intervention_id}/photos")
@requires_role("ARTISAN")
async def create_photo(request: web.Request) -> web.Response:
    artisan_id = authenticate(request).user_id
    intervention_id = _uuid(request, "intervention_id")
    body = await read_json(request, NewPhoto)
    result = await photos.create_photo(request.app, artisan_id, intervention_id, body)
    return json_response(result, status=201)


@routes.post("/interventions/{intervention_id}/photos/{photo_id}/complete")
@requires_role("ARTISAN")
async def complete_photo(request: web.Request) -> web.Response:
    artisan_id = authenticate(request).user_id
    result = await photos.complete_photo(
        request.app,
        artisan_id,
        _uuid(request, "intervention_id"),
        _uuid(request, "photo_id"),
    )
    return json_response(result)


@routes.get("/interventions/{intervention_id}/photos")
@requires_auth
async def list_photos(request: web.Request) -> web.Response:
    result = await photos.list_photos(
        request.app,
        authenticate(request),
        _uuid(request, "intervention_id"),
    )
    return json_response(result)


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
