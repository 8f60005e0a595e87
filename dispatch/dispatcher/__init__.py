"""The dispatcher: turns SEARCHING interventions into offers, cascades, gives up.

`setup(app)` registers the Dispatcher (app[dispatch_keys.DISPATCHER]), its poll loop
(and, for the batched policy, its tick; only when settings.run_background) and GET /admin/match.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from core import appkeys
from dispatch import appkeys as dispatch_keys
from dispatch.dispatcher.admin_routes import routes as admin_routes
from dispatch.dispatcher.engine import Dispatcher, DispatcherConfig

__all__ = ["Dispatcher", "DispatcherConfig", "setup"]


async def _dispatcher_ctx(app: web.Application) -> AsyncIterator[None]:
    dispatcher: Dispatcher = app[dispatch_keys.DISPATCHER]
    tasks: list[asyncio.Task[None]] = []
    if app[appkeys.SETTINGS].run_background:
        tasks.append(asyncio.create_task(dispatcher.run(), name="zendo-dispatch-poller"))
        if dispatcher.policy.batch_interval_s is not None:
            tasks.append(asyncio.create_task(dispatcher.run_batches(), name="zendo-dispatch-batch"))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await dispatcher.close()


def setup(app: web.Application) -> None:
    # Steps triggered by requests and timers run in every process; the poller that
    # resumes due and orphaned jobs runs where background tasks are enabled.
    dispatcher = Dispatcher(app)
    app[dispatch_keys.DISPATCHER] = dispatcher
    app[appkeys.DISPATCH_HOOKS] = dispatcher
    app.router.add_routes(admin_routes)
    app.cleanup_ctx.append(_dispatcher_ctx)
