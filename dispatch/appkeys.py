"""Every typed key of the app and request state, in one place.

Contexts append their own keys here; string keys are never used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg
from aiohttp import web
from redis.asyncio import Redis

from dispatch.settings import Settings

if TYPE_CHECKING:
    pass

SETTINGS = web.AppKey("settings", Settings)
PG_POOL = web.AppKey("pg_pool", asyncpg.Pool)
REDIS = web.AppKey("redis", Redis)
LOGIN_LIMITER = web.AppKey("login_limiter", "RateLimiter")
# Services registered by the contexts (gateway notifier, dispatcher, storage, ...)
# are typed as Any here to keep this module free of import cycles; each context
# exposes a typed accessor.
NOTIFIER = web.AppKey("notifier", Any)
MATCH_INDEX = web.AppKey("match_index", Any)
DISPATCHER = web.AppKey("dispatcher", Any)
STORAGE = web.AppKey("storage", Any)
PAYMENTS = web.AppKey("payments", Any)
SERVICE_AREA = web.AppKey("service_area", Any)
GATEWAY = web.AppKey("gateway", Any)
# Offer accept/decline, provided by the offers context, called by the gateway for WS frames.
OFFER_ACTIONS = web.AppKey("offer_actions", Any)
# Gateway tunables (gateway/config.py); tests replace it before the app starts.
GATEWAY_CONFIG = web.AppKey("gateway_config", Any)

PRINCIPAL = web.RequestKey("principal", "Principal")
REQUEST_ID = web.RequestKey("request_id", str)
