"""HTTP routes of the interventions context (CONTRACT §4). Thin: parse, call the service."""

from __future__ import annotations

import uuid

from aiohttp import web

from core.errors import FieldError, NotFound, ValidationFailed
from core.guards import authenticate, requires_auth, requires_role
from core.jsonutil import json_response, read_json
from dispatch.dispatcher import setup as dispatcher_setup
from dispatch.interventions import service
from dispatch.interventions.area import setup_service_area
from dispatch.interventions.schemas import (
    CreateIntervention,
    RatingBody,
    StatusChange,
    check_idempotency_key,
)
from dispatch.interventions.statemachine import STATUSES

routes = web.RouteTableDef()
MAX_LIST_LIMIT = 100


def intervention_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["id"])
    except ValueError as exc:
        raise NotFound("No such intervention") from exc


def _list_params(request: web.Request) -> tuple[str | None, int]:
    status = request.query.get("status")
    if status is not None and status not in STATUSES:
        raise ValidationFailed([FieldError("status", f"one of {', '.join(STATUSES)}")])
    raw = request.query.get("limit", "50")
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIST_LIMIT:
        raise ValidationFailed([FieldError("limit", f"an integer from 1 to {MAX_LIST_LIMIT}")])
    return status, int(raw)


@routes.post("/interventions")
@requires_role("CLIENT")
async def create_intervention(request: web.Request) -> web.Response:
    key = check_idempotency_key(request.headers.get("Idempotency-Key"))
    body = await read_json(request, CreateIntervention)
    job, created = await service.create(request.app, authenticate(request), body, key)
    headers = {"Location": f"/interventions/{job['id']}"}
    return json_response(job, status=201 if created else 200, headers=headers)


@routes.get("/interventions")
@requires_auth
async def list_interventions(request: web.Request) -> web.Response:
    status, limit = _list_params(request)
    jobs = await service.list_mine(request.app, authenticate(request), status=status, limit=limit)
    return json_response(jobs)


@routes.get("/interventions/{id}")
@requires_auth
async def get_intervention(request: web.Request) -> web.Response:
    job = await service.get(request.app, authenticate(request), intervention_id(request))
    return json_response(job)


@routes.post("/interventions/{id}/cancel")
@requires_auth
async def cancel_intervention(request: web.Request) -> web.Response:
    job = await service.cancel(request.app, authenticate(request), intervention_id(request))
    return json_response(job)


@routes.post("/interventions/{id}/status")
@requires_role("ARTISAN")
async def change_status(request: web.Request) -> web.Response:
    job_id = intervention_id(request)
    body = await read_json(request, StatusChange)
    job = await service.advance(
        request.app, authenticate(request), job_id, body.status, body.start_code
    )
    return json_response(job)


@routes.post("/interventions/{id}/rating")
@requires_role("CLIENT")
async def rate_intervention(request: web.Request) -> web.Response:
    job_id = intervention_id(request)
    body = await read_json(request, RatingBody)
    rating = await service.rate(
        request.app, authenticate(request), job_id, body.stars, body.comment
    )
    return json_response(rating, status=201)


def setup(app: web.Application) -> None:
    setup_service_area(app)
    app.router.add_routes(routes)
    dispatcher_setup(app)
