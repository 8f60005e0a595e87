"""Sockets opening at once register in a few batches, and past what the process serves
promptly a handshake is refused before the upgrade with a retry hint."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from core import redis_keys
from core.settings import Settings
from gateway import appkeys as gateway_keys
from gateway import ws as ws_module
from tests.factories import bearer
from tests.gateway.conftest import connect, new_artisan, new_user


async def test_sockets_opening_together_register_in_a_few_batches(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    artisans = [
        await new_artisan(db, gw_settings, specialty="GLAZIER", artisan_status=status)
        for status in ("VERIFIED", "PENDING") * 20
    ]
    clients = [await new_user(db, gw_settings) for _ in range(40)]
    gateway = gw.app[gateway_keys.GATEWAY]
    before = gateway.arrivals.batches
    sockets = await asyncio.gather(*(connect(gw, token) for _uid, token in artisans + clients))
    try:
        assert gateway.arrivals.batches - before < 20  # 80 sockets, not 80 round trips each
        assert gateway.arrivals.waiting == 0 and gateway.opening == 0
        redis = gateway.redis
        for uid, _token in artisans + clients:
            assert await redis.zscore(redis_keys.user_nodes(str(uid)), gateway.node_id)
        for (uid, _token), status in zip(artisans, ("VERIFIED", "PENDING") * 20, strict=True):
            (session,) = gateway.sessions[str(uid)]
            assert session.specialty == "GLAZIER"
            assert session.verified is (status == "VERIFIED")
    finally:
        await asyncio.gather(*(s.close() for s in sockets))


async def test_handshakes_past_the_bound_are_refused_before_the_upgrade(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    _uid, token = await new_user(db, gw_settings)
    gateway = gw.app[gateway_keys.GATEWAY]
    gateway.opening = ws_module.MAX_OPENING  # as if that many sockets were still opening
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await gw.ws_connect("/ws", headers=bearer(token))
    assert refused.value.status == 503
    assert refused.value.headers is not None
    assert int(refused.value.headers["Retry-After"]) >= 1
    assert gateway.metrics.ws_refused._value.get() == 1
    gateway.opening = 0
    sock = await connect(gw, token)  # room again: admitted, hello received
    await sock.close()
