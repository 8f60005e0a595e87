"""The typed app keys of the dispatch contexts (the shared ones: `core.appkeys`).

The classes are imported for the type checker only, so this module imports no
context at run time and every context can import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from core.ratelimit import RateLimiter
    from dispatch.dispatcher.engine import Dispatcher
    from dispatch.interventions.area import ServiceArea
    from dispatch.payments.service import PaymentsService
    from dispatch.storage.base import Storage

DISPATCHER: web.AppKey[Dispatcher] = web.AppKey("dispatcher")
STORAGE: web.AppKey[Storage] = web.AppKey("storage")
PAYMENTS: web.AppKey[PaymentsService] = web.AppKey("payments")
SERVICE_AREA: web.AppKey[ServiceArea] = web.AppKey("service_area")
LOGIN_LIMITER: web.AppKey[RateLimiter] = web.AppKey("login_limiter")
REGISTRATION_LIMITER: web.AppKey[RateLimiter] = web.AppKey("registration_limiter")
START_CODE_LIMITER: web.AppKey[RateLimiter] = web.AppKey("start_code_limiter")
