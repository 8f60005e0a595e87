"""GET /admin/match: the ranking the dispatcher would use now (ADMIN only; audited)."""

from __future__ import annotations

import math

from aiohttp import web

from core import appkeys, audit
from core.domain import SPECIALTIES
from core.errors import FieldError, ServiceUnavailable, ValidationFailed
from core.guards import authenticate, requires_role
from core.jsonutil import json_response
from dispatch.dispatcher.matcher import Matcher, NoIndex

routes = web.RouteTableDef()
MAX_K = 100


def _number(request: web.Request, name: str, low: float, high: float) -> float:
    raw = request.query.get(name)
    if raw is None:
        raise ValidationFailed([FieldError(name, "required")])
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and low <= value <= high):
        raise ValidationFailed([FieldError(name, f"a number from {low:g} to {high:g}")])
    return value


@routes.get("/admin/match")
@requires_role("ADMIN")
async def admin_match(request: web.Request) -> web.Response:
    lat = _number(request, "lat", -90.0, 90.0)
    lon = _number(request, "lon", -180.0, 180.0)
    specialty = request.query.get("specialty")
    if specialty not in SPECIALTIES:
        raise ValidationFailed([FieldError("specialty", f"one of {', '.join(SPECIALTIES)}")])
    raw_k = request.query.get("k", "10")
    if not (raw_k.isascii() and raw_k.isdigit()) or not 1 <= int(raw_k) <= MAX_K:
        raise ValidationFailed([FieldError("k", f"an integer from 1 to {MAX_K}")])
    try:
        candidates = Matcher(request.app).rank(
            lat,
            lon,
            specialty,
            k=int(raw_k),
            max_km=request.app[appkeys.SETTINGS].match_radius_km,
        )
    except NoIndex as exc:
        raise ServiceUnavailable("The artisan index is not ready") from exc
    # Who is where, near a point: personal data, so the read is audited.
    async with request.app[appkeys.PG_POOL].acquire() as conn:
        await audit.record(
            conn,
            admin_id=authenticate(request).user_id,
            action="match.view",
            target_type="match",
            target_id=None,
            data={
                "lat": lat,
                "lon": lon,
                "specialty": specialty,
                "k": int(raw_k),
                "returned": [c.artisan_id for c in candidates],
            },
        )
    return json_response(
        [
            {"artisan_id": c.artisan_id, "distance_km": c.distance_km, "score": c.score}
            for c in candidates
        ]
    )
