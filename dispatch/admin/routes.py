"""HTTP routes of the admin context (ADMIN only; also enforced by prefix)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from aiohttp import web

from core.domain import VERIFICATION_STATUSES
from core.errors import FieldError, ValidationFailed
from core.guards import authenticate, requires_role
from core.jsonutil import json_response, read_json
from dispatch.admin import service
from dispatch.artisans.routes import path_uuid
from dispatch.offers.service import revoke_pending_for_artisan

routes = web.RouteTableDef()
MAX_PAGE = 100
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=1000, pattern=r"\S")]


class RejectBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: Reason


class ReviewBody(msgspec.Struct, forbid_unknown_fields=True):
    status: Literal["ACCEPTED", "REJECTED"]
    reason: Reason | None = None


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = lo - 1
    if not lo <= value <= hi:
        raise ValidationFailed([FieldError(name, f"must be an integer between {lo} and {hi}")])
    return value


@routes.get("/admin/artisans")
@requires_role("ADMIN")
async def list_artisans(request: web.Request) -> web.Response:
    status = request.query.get("status")
    if status is not None and status not in VERIFICATION_STATUSES:
        raise ValidationFailed(
            [FieldError("status", f"must be one of {', '.join(VERIFICATION_STATUSES)}")]
        )
    limit = _int_param(request, "limit", 50, 1, MAX_PAGE)
    offset = _int_param(request, "offset", 0, 0, 10_000_000)
    app = request.app
    items, total = await service.list_artisans(
        app,
        authenticate(request).user_id,
        status=status,
        limit=limit,
        offset=offset,
    )
    return json_response(items, headers={"X-Total-Count": str(total)})


@routes.get("/admin/artisans/{artisan_id}/documents")
@requires_role("ADMIN")
async def artisan_documents(request: web.Request) -> web.Response:
    app = request.app
    docs = await service.artisan_documents(
        app,
        authenticate(request).user_id,
        path_uuid(request, "artisan_id"),
    )
    return json_response(docs)


@routes.post("/admin/artisans/{artisan_id}/verify")
@requires_role("ADMIN")
async def verify_artisan(request: web.Request) -> web.Response:
    app = request.app
    result = await service.verify_artisan(
        app,
        authenticate(request).user_id,
        path_uuid(request, "artisan_id"),
    )
    return json_response(result)


@routes.post("/admin/artisans/{artisan_id}/reject")
@requires_role("ADMIN")
async def reject_artisan(request: web.Request) -> web.Response:
    artisan_id = path_uuid(request, "artisan_id")
    body = await read_json(request, RejectBody)
    app = request.app
    result = await service.reject_artisan(
        app,
        authenticate(request).user_id,
        artisan_id,
        body.reason.strip(),
    )
    # After the reject commits: their pending offers are revoked and those jobs cascade.
    await revoke_pending_for_artisan(app, artisan_id)
    return json_response(result)


@routes.post("/admin/documents/{document_id}/review")
@requires_role("ADMIN")
async def review_document(request: web.Request) -> web.Response:
    document_id = path_uuid(request, "document_id")
    body = await read_json(request, ReviewBody)
    result = await service.review_document(
        request.app,
        authenticate(request).user_id,
        document_id,
        body.status,
        body.reason.strip() if body.reason else None,
    )
    return json_response(result)


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
