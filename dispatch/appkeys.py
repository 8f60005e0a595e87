"""Every typed key of the app and request state, in one place.

Contexts append their own keys here; string keys are never used. Services that
live in the contexts are typed through annotations on imports made only for the
type checker, so this module imports none of them at run time (no cycles).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web
from redis.asyncio import Redis

from dispatch.settings import Settings

if TYPE_CHECKING:
    from dispatch.auth.principal import Principal
    from dispatch.dispatcher.engine import Dispatcher
    from dispatch.interventions.area import ServiceArea
    from dispatch.offers.service import OfferActions
    from dispatch.payments.service import PaymentsService
    from dispatch.ratelimit import RateLimiter
    from dispatch.storage.base import Storage
    from gateway.config import GatewayConfig
    from gateway.node import Gateway
    from gateway.notify import Notifier
    from matching import ArtisanIndex

SETTINGS = web.AppKey("settings", Settings)
PG_POOL = web.AppKey("pg_pool", asyncpg.Pool)
REDIS = web.AppKey("redis", Redis)
LOGIN_LIMITER: web.AppKey[RateLimiter] = web.AppKey("login_limiter")
NOTIFIER: web.AppKey[Notifier] = web.AppKey("notifier")
# The process's ArtisanIndex mirror; set once it holds the fleet (gateway/mirror.py).
MATCH_INDEX: web.AppKey[ArtisanIndex] = web.AppKey("match_index")
DISPATCHER: web.AppKey[Dispatcher] = web.AppKey("dispatcher")
STORAGE: web.AppKey[Storage] = web.AppKey("storage")
PAYMENTS: web.AppKey[PaymentsService] = web.AppKey("payments")
SERVICE_AREA: web.AppKey[ServiceArea] = web.AppKey("service_area")
GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway")
# Offer accept/decline, provided by the offers context, called by the gateway for WS frames.
OFFER_ACTIONS: web.AppKey[OfferActions] = web.AppKey("offer_actions")
# Gateway tunables (gateway/config.py); tests replace it before the app starts.
GATEWAY_CONFIG: web.AppKey[GatewayConfig] = web.AppKey("gateway_config")

PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal")
REQUEST_ID = web.RequestKey("request_id", str)
