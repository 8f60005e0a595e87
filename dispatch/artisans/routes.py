"""HTTP routes of the artisans context: profile, documents, payouts onboarding.

`/artisan/*` is ARTISAN-only (also enforced by prefix in the role middleware).
"""

from __future__ import annotations

import uuid

from aiohttp import web

from core.errors import NotFound
from core.guards import authenticate, requires_role
from core.jsonutil import json_response, read_json
from dispatch import appkeys as dispatch_keys
from dispatch.artisans import photos_routes, service
from dispatch.artisans.schemas import NewDocument, ProfilePatch

routes = web.RouteTableDef()


def path_uuid(request: web.Request, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError as exc:
        raise NotFound("No such resource") from exc


@routes.get("/artisan/profile")
@requires_role("ARTISAN")
async def get_profile(request: web.Request) -> web.Response:
    user_id = authenticate(request).user_id
    return json_response(await service.get_profile(request.app, user_id))


@routes.patch("/artisan/profile")
@requires_role("ARTISAN")
async def patch_profile(request: web.Request) -> web.Response:
    user_id = authenticate(request).user_id
    patch = await read_json(request, ProfilePatch)
    return json_response(await service.patch_profile(request.app, user_id, patch))


@routes.post("/artisan/documents")
@requires_role("ARTISAN")
async def create_document(request: web.Request) -> web.Response:
    user_id = authenticate(request).user_id
    body = await read_json(request, NewDocument)
    result = await service.create_document(request.app, user_id, body)
    return json_response(result, status=201)


@routes.get("/artisan/documents")
@requires_role("ARTISAN")
async def list_documents(request: web.Request) -> web.Response:
    user_id = authenticate(request).user_id
    return json_response(await service.list_documents(request.app, user_id))


@routes.post("/artisan/documents/{document_id}/complete")
@requires_role("ARTISAN")
async def complete_document(request: web.Request) -> web.Response:
    user_id = authenticate(request).user_id
    document_id = path_uuid(request, "document_id")
    result = await service.complete_document(request.app, user_id, document_id)
    return json_response(result)


@routes.post("/artisan/payouts/onboarding")
@requires_role("ARTISAN")
async def payouts_onboarding(request: web.Request) -> web.Response:
    user_id = authenticate(request).user_id
    link = await request.app[dispatch_keys.PAYMENTS].onboarding_link(user_id)
    return json_response(link)


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
    photos_routes.setup(app)
