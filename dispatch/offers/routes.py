"""HTTP routes of the offers context: accept and decline (CONTRACT §4)."""

from __future__ import annotations

import uuid

from aiohttp import web

from core import appkeys
from core.errors import NotFound
from core.guards import authenticate, requires_role
from core.jsonutil import json_response
from dispatch.offers.service import OfferActions

routes = web.RouteTableDef()


def _offer_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["offer_id"])
    except ValueError as exc:
        raise NotFound("No such offer") from exc


@routes.post("/offers/{offer_id}/accept")
@requires_role("ARTISAN")
async def accept_offer(request: web.Request) -> web.Response:
    offer_id = _offer_id(request)
    job = await request.app[appkeys.OFFER_ACTIONS].accept(
        artisan_id=authenticate(request).user_id, offer_id=offer_id
    )
    return json_response(job)


@routes.post("/offers/{offer_id}/decline")
@requires_role("ARTISAN")
async def decline_offer(request: web.Request) -> web.Response:
    offer_id = _offer_id(request)
    await request.app[appkeys.OFFER_ACTIONS].decline(
        artisan_id=authenticate(request).user_id, offer_id=offer_id
    )
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    app[appkeys.OFFER_ACTIONS] = OfferActions(app)
    app.router.add_routes(routes)
