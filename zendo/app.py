"""The composition root: the one app factory. No side effects at import; tests build
the app the same way.

Each layer's `setup(app)` mounts its routes, its background tasks (one cleanup_ctx
each) and the ports it provides to the others (`core.ports`): the gateway the
notifier and the live state, the offers context the offer actions, the payments
context the payment steps, the dispatcher its hooks."""

from __future__ import annotations

from aiohttp import web

from core import appkeys
from core.guards import role_prefix_middleware
from core.jsonutil import MAX_BODY_BYTES
from core.metrics import Metrics
from core.settings import Settings
from dispatch.admin import routes as admin_routes
from dispatch.artisans import routes as artisan_routes
from dispatch.auth import routes as auth_routes
from dispatch.interventions import routes as intervention_routes
from dispatch.offers import routes as offer_routes
from dispatch.ops import routes as ops_routes
from dispatch.payments import routes as payment_routes
from dispatch.storage import routes as storage_routes
from gateway import routes as gateway_routes
from zendo.admission import (
    ADMISSION,
    ADMISSION_METRICS,
    JOB_RATE,
    Admission,
    AdmissionMetrics,
    admission_middleware,
)
from zendo.console import routes as console_routes
from zendo.headroom import JobRate
from zendo.middleware import (
    cors_middleware,
    error_middleware,
    metrics_middleware,
    security_headers,
)
from zendo.resources import pg_pool_ctx, redis_ctx, sessions_ctx
from zendo.system import routes as system_routes


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        middlewares=[
            metrics_middleware,
            cors_middleware(settings.cors_origins),
            error_middleware,
            admission_middleware,
            role_prefix_middleware,
        ],
    )
    app[appkeys.SETTINGS] = settings
    app[appkeys.METRICS] = Metrics.create(settings.dispatch_policy, settings.metrics_dir)
    app[ADMISSION] = app[appkeys.WORK_METER] = Admission()
    app[JOB_RATE] = JobRate(busy_limit=settings.cpu_busy_limit)
    app[ADMISSION_METRICS] = AdmissionMetrics(app[ADMISSION], app[JOB_RATE], app[appkeys.METRICS])
    app.on_response_prepare.append(security_headers)

    # Resources first, in dependency order; contexts append their background
    # tasks after these so they stop before the pools they use are closed.
    app.cleanup_ctx.append(pg_pool_ctx)
    app.cleanup_ctx.append(redis_ctx)
    app.cleanup_ctx.append(sessions_ctx)

    for setup in (
        system_routes.setup,
        auth_routes.setup,
        artisan_routes.setup,
        admin_routes.setup,
        payment_routes.setup,
        storage_routes.setup,
        gateway_routes.setup,
        intervention_routes.setup,
        offer_routes.setup,
        ops_routes.setup,
        console_routes.setup,
    ):
        setup(app)
    return app
