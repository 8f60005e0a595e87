"""The dispatcher: turns SEARCHING interventions into offers, cascades, gives up.

`setup(app)` registers the Dispatcher (app[dispatch_keys.DISPATCHER]), its poll loop
(only when settings.run_background) and GET /admin/match.
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
    poller: asyncio.Task[None] | None = None
    if app[appkeys.SETTINGS].run_background:
        poller = asyncio.create_task(dispatcher.run(), name="zendo-dispatch-poller")
    try:
        yield
    finally:
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        await dispatcher.close()


def setup(app: web.Application) -> None:
    # Steps triggered by requests and timers run in every process; the poller that
    # resumes due and orphaned jobs runs where background tasks are enabled.
    dispatcher = Dispatcher(app)
    app[dispatch_keys.DISPATCHER] = dispatcher
    app[appkeys.DISPATCH_HOOKS] = dispatcher
    app.router.add_routes(admin_routes)
    app.cleanup_ctx.append(_dispatcher_ctx)
