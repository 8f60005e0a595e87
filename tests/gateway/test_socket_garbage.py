"""A finished socket is freed by reference counting, not left to the cyclic collector
(a mass close of 10,000 sockets would otherwise leave one long collection)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient

from core.appkeys import METRICS
from core.settings import Settings
from tests.gateway.conftest import connect, new_artisan


async def test_closed_sockets_leave_no_cycle_for_the_collector(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    registry = gw.app[METRICS].registry
    sockets = [
        await connect(gw, token)
        for _id, token in [await new_artisan(db, gw_settings) for _ in range(10)]
    ]
    assert registry.get_sample_value("zendo_ws_connections") == 10
    gc.collect()
    flags = gc.get_debug()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds stays in gc.garbage
    try:
        await asyncio.gather(*(ws.close() for ws in sockets))
        async with asyncio.timeout(3):  # every handler finished, its finally run
            while registry.get_sample_value("zendo_ws_connections") != 0:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        del sockets
        gc.collect()
        left = [o for o in gc.garbage if isinstance(o, web.WebSocketResponse)]
        assert left == []
    finally:
        gc.set_debug(flags)
        gc.garbage.clear()
