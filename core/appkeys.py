"""The typed keys of the app and request state shared across layers.

Each layer keeps its own keys next to its code (`dispatch.appkeys`,
`gateway.appkeys`); the keys here are the ones more than one layer reads. A layer
reaches another only through the ports of `core.ports`, put in the app by the
composition root.
"""

from __future__ import annotations

import asyncpg
from aiohttp import web
from redis.asyncio import Redis

from core.metrics import Metrics
from core.ports import (
    DispatchHooks,
    LiveState,
    Notifier,
    OfferActions,
    PaymentSteps,
    WorkMeter,
)
from core.principal import Principal
from core.sessions import RevokedSessions
from core.settings import Settings
from matching import ArtisanIndex

SETTINGS = web.AppKey("settings", Settings)
PG_POOL = web.AppKey("pg_pool", asyncpg.Pool)
REDIS = web.AppKey("redis", Redis)
# This process's copy of the revoked login sessions (core/sessions.py).
SESSIONS = web.AppKey("sessions", RevokedSessions)
METRICS = web.AppKey("metrics", Metrics)
# The process's ArtisanIndex mirror; set once it holds the fleet (gateway/mirror.py).
MATCH_INDEX = web.AppKey("match_index", ArtisanIndex)

# Ports (core/ports.py).
NOTIFIER: web.AppKey[Notifier] = web.AppKey("notifier")
LIVE_STATE: web.AppKey[LiveState] = web.AppKey("live_state")
OFFER_ACTIONS: web.AppKey[OfferActions] = web.AppKey("offer_actions")
PAYMENT_STEPS: web.AppKey[PaymentSteps] = web.AppKey("payment_steps")
DISPATCH_HOOKS: web.AppKey[DispatchHooks] = web.AppKey("dispatch_hooks")
WORK_METER: web.AppKey[WorkMeter] = web.AppKey("work_meter")

PRINCIPAL = web.RequestKey("principal", Principal)
REQUEST_ID = web.RequestKey("request_id", str)
