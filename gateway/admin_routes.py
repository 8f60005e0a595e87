"""GET /admin/artisans/{id}/live: an artisan's live state (ADMIN only; audited, found or
not: a position is personal data)."""

from __future__ import annotations

import uuid

from aiohttp import web

from core import appkeys, audit
from core.errors import NotFound
from core.guards import authenticate, requires_role
from core.jsonutil import json_response
from gateway import live

routes = web.RouteTableDef()


@routes.get("/admin/artisans/{artisan_id}/live")
@requires_role("ADMIN")
async def artisan_live(request: web.Request) -> web.Response:
    try:
        artisan_id = uuid.UUID(request.match_info["artisan_id"])
    except ValueError as exc:
        raise NotFound("Unknown artisan") from exc
    state = await live.read_live(request.app[appkeys.REDIS], artisan_id)
    async with request.app[appkeys.PG_POOL].acquire() as conn:
        await audit.record(
            conn,
            admin_id=authenticate(request).user_id,
            action="artisan.live.view",
            target_type="artisan",
            target_id=artisan_id,
            data={"found": state is not None},
        )
    if state is None:
        raise NotFound("No live position for this artisan")
    return json_response(state)
