"""The typed app keys of the gateway (the shared ones: `core.appkeys`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from core.gateway_config import GatewayConfig

if TYPE_CHECKING:
    from gateway.node import Gateway

GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway")
# Gateway tunables; tests replace it before the app starts.
GATEWAY_CONFIG = web.AppKey("gateway_config", GatewayConfig)
