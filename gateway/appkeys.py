"""The typed app keys of the gateway (the shared ones: `core.appkeys`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from core.gateway_config import GatewayConfig

if TYPE_CHECKING:
    from gateway.node import Gateway
    from gateway.ops import OpsHub

GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway")
# Gateway tunables; tests replace it before the app starts.
GATEWAY_CONFIG = web.AppKey("gateway_config", GatewayConfig)
# The ops feed of this process (gateway/ops.py).
OPS_HUB: web.AppKey[OpsHub] = web.AppKey("ops_hub")
