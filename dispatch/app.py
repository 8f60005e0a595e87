"""The app factory. No side effects at import; tests build the app the same way."""

from __future__ import annotations

from aiohttp import web

from dispatch import appkeys
from dispatch.admin import routes as admin_routes
from dispatch.artisans import routes as artisan_routes
from dispatch.auth import routes as auth_routes
from dispatch.auth.guards import role_prefix_middleware
from dispatch.interventions import routes as intervention_routes
from dispatch.jsonutil import MAX_BODY_BYTES
from dispatch.metrics import Metrics
from dispatch.middleware import (
    METRICS,
    cors_middleware,
    error_middleware,
    metrics_middleware,
    security_headers,
)
from dispatch.offers import routes as offer_routes
from dispatch.payments import routes as payment_routes
from dispatch.resources import pg_pool_ctx, redis_ctx
from dispatch.settings import Settings
from dispatch.storage import routes as storage_routes
from dispatch.system import routes as system_routes
from gateway import setup as gateway_setup


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        middlewares=[
            metrics_middleware,
            cors_middleware(settings.cors_origins),
            error_middleware,
            role_prefix_middleware,
        ],
    )
    app[appkeys.SETTINGS] = settings
    app[METRICS] = Metrics.create()
    app.on_response_prepare.append(security_headers)

    # Resources first, in dependency order; contexts append their background
    # tasks after these so they stop before the pools they use are closed.
    app.cleanup_ctx.append(pg_pool_ctx)
    app.cleanup_ctx.append(redis_ctx)

    for setup in (
        system_routes.setup,
        auth_routes.setup,
        artisan_routes.setup,
        admin_routes.setup,
        payment_routes.setup,
        storage_routes.setup,
        gateway_setup,
        intervention_routes.setup,
        offer_routes.setup,
    ):
        setup(app)
    return app
