"""HTTP routes of the payments context, and its lifetime (Stripe client, service)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

from aiohttp import web

from core import appkeys
from core.errors import NotFound
from core.guards import authenticate, requires_auth
from core.jsonutil import json_response, read_body
from dispatch import appkeys as dispatch_keys
from dispatch.payments.service import PaymentsService
from dispatch.payments.stripe_client import stripe_api
from dispatch.payments.webhooks import handle_webhook

routes = web.RouteTableDef()
log = logging.getLogger("zendo.payments")
RECONCILE_EVERY_S = 60.0


async def payments_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[appkeys.SETTINGS]
    pool = app[appkeys.PG_POOL]
    if not settings.payments_enabled:
        _provide(app, PaymentsService(pool, settings, None))
        yield
        return
    async with stripe_api(settings) as api:
        _provide(app, PaymentsService(pool, settings, api))
        yield


def _provide(app: web.Application, service: PaymentsService) -> None:
    app[dispatch_keys.PAYMENTS] = service
    app[appkeys.PAYMENT_STEPS] = service  # the outbox's payment steps


async def _reconcile_forever(service: PaymentsService) -> None:
    while True:
        await asyncio.sleep(RECONCILE_EVERY_S)
        try:
            await service.reconcile()
        except Exception:
            log.exception("payment reconciliation failed")


async def reconcile_ctx(app: web.Application) -> AsyncIterator[None]:
    """Retries payment steps that did not finish (one background task)."""
    service: PaymentsService = app[dispatch_keys.PAYMENTS]
    if not (service.enabled and app[appkeys.SETTINGS].run_background):
        yield
        return
    task = asyncio.create_task(_reconcile_forever(service), name="payments-reconcile")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@routes.post("/webhooks/stripe")
async def stripe_webhook(request: web.Request) -> web.Response:
    """Stripe calls this without a login; the signature is the authentication."""
    payload = await read_body(request)  # the raw bytes: the signature covers them exactly
    service: PaymentsService = request.app[dispatch_keys.PAYMENTS]
    result = await handle_webhook(
        service.pool,
        service.api,
        request.app[appkeys.SETTINGS].stripe_webhook_secret,
        payload,
        request.headers.get("Stripe-Signature"),
    )
    return json_response(result)


@routes.get("/interventions/{intervention_id}/payment")
@requires_auth
async def intervention_payment(request: web.Request) -> web.Response:
    """The hold's state and, for the client to confirm it, its client_secret."""
    principal = authenticate(request)
    try:
        intervention_id = uuid.UUID(request.match_info["intervention_id"])
    except ValueError as exc:
        raise NotFound("No such intervention") from exc
    service: PaymentsService = request.app[dispatch_keys.PAYMENTS]
    view = await service.client_payment(principal.user_id, intervention_id)
    return json_response(view, headers={"Cache-Control": "no-store"})


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(payments_ctx)
    app.cleanup_ctx.append(reconcile_ctx)
    app.router.add_routes(routes)
