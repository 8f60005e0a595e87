"""Mounts the gateway: `/ws`, the admin live view, its ports and background tasks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from core import appkeys
from gateway import (
    admin_routes,
    gcpacer,
    mirror,
    notify,
    ops,
    presence,
    reconciler,
    writebehind,
)
from gateway import appkeys as gateway_keys
from gateway.live_state import RedisLiveState
from gateway.node import Gateway
from gateway.tasks import stop_tasks
from gateway.ws import ws_handler


async def _flusher_ctx(app: web.Application) -> AsyncIterator[None]:
    """The location batch flusher (runs even without other background loops: the socket
    path depends on it)."""
    gateway: Gateway = app[gateway_keys.GATEWAY]
    task = asyncio.create_task(gateway.batcher.run(), name="gateway-flusher")
    yield
    await stop_tasks(task)


async def _writer_ctx(app: web.Application) -> AsyncIterator[None]:
    """The post-commit Redis writer's connection (gateway/redis_writer.py)."""
    writer = app[gateway_keys.GATEWAY].writer
    await writer.start()
    yield
    await writer.close()


async def _shutdown(app: web.Application) -> None:
    """Close every socket at once, within GatewayConfig.shutdown_close_s (else aiohttp
    waits for each WebSocket handler until its shutdown timeout)."""
    await app[gateway_keys.GATEWAY].shutdown()


def _background(
    ctx: Callable[[web.Application], AsyncIterator[None]],
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def maybe(app: web.Application) -> AsyncIterator[None]:
        if not app[appkeys.SETTINGS].run_background:
            yield
            return
        async for _ in ctx(app):
            yield

    return maybe


def setup(app: web.Application) -> None:
    """Mount `/ws`, `/admin/artisans/{id}/live` and the gateway's background tasks."""
    app[gateway_keys.GATEWAY_CONFIG] = app[appkeys.SETTINGS].gateway
    gateway = Gateway(app)
    app[gateway_keys.GATEWAY] = gateway
    notifier = notify.Notifier(gateway)
    app[appkeys.NOTIFIER] = notifier
    app[appkeys.LIVE_STATE] = RedisLiveState(app, notifier)
    app.router.add_get("/ws", ws_handler)
    app.on_shutdown.append(_shutdown)
    app.router.add_routes(admin_routes.routes)
    app.cleanup_ctx.append(gcpacer.gc_ctx)
    # Before the flusher: it stops (and flushes its last batch) while the writer is open.
    app.cleanup_ctx.append(_writer_ctx)
    app.cleanup_ctx.append(_flusher_ctx)
    app.cleanup_ctx.append(notify.listener_ctx)
    app.cleanup_ctx.append(_background(presence.presence_ctx))
    app.cleanup_ctx.append(_background(writebehind.writebehind_ctx))
    app.cleanup_ctx.append(_background(reconciler.reconciler_ctx))
    app.cleanup_ctx.append(mirror.mirror_ctx)
    app[gateway_keys.OPS_HUB] = ops.OpsHub(app)
    app.cleanup_ctx.append(ops.ops_ctx)
