"""Sockets opening at once register in a few batches, and past what the process serves
promptly a handshake is refused before the upgrade with a retry hint."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from core import appkeys, redis_keys
from core.db import create_pool
from core.settings import Settings
from gateway import appkeys as gateway_keys
from gateway.arrivals import FLOOR_HELLOS_PER_S, MAX_RETRY_AFTER_S, Arrivals, Opening
from tests.conftest import TEST_DATABASE_URL
from tests.factories import bearer
from tests.gateway.conftest import connect, new_artisan, new_user
from tests.ports import free_port


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
        assert gateway.arrivals.waiting == 0 and len(gateway.opening) == 0
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
    stuck = gateway.opening.begin()  # a socket upgraded long ago and still without hello
    await asyncio.sleep(gateway.opening.max_wait_s + 0.05)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await gw.ws_connect("/ws", headers=bearer(token))
    assert refused.value.status == 503
    assert refused.value.headers is not None
    assert int(refused.value.headers["Retry-After"]) >= 1
    assert gateway.metrics.ws_refused._value.get() == 1
    gateway.opening.end(stuck)
    hellos = gateway.metrics.registry.get_sample_value("zendo_ws_hello_seconds_count")
    sock = await connect(gw, token)  # served promptly again: admitted, hello received
    await sock.close()
    # the server times admission -> hello (the refused handshake never had one)
    assert gateway.metrics.registry.get_sample_value("zendo_ws_hello_seconds_count") == (
        (hellos or 0) + 1
    )


async def test_a_burst_of_handshakes_counts_from_admission(
    gw: TestClient[Any, Any],
    db: asyncpg.Connection,
    gw_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Handshakes arriving together: each counts as opening as soon as it is admitted
    (before its token's Redis check and its upgrade), so the bound holds for the burst
    itself, however slow the check; the excess is refused with a hint, the admitted all
    get their hello."""
    users = [await new_user(db, gw_settings) for _ in range(20)]
    gateway = gw.app[gateway_keys.GATEWAY]
    gateway.opening = opening = Opening(max_opening=5, max_wait_s=60.0, min_opening=5)
    sessions = gw.app[appkeys.SESSIONS]
    check = sessions.check

    async def slow_check(principal: Any) -> Any:
        await asyncio.sleep(0.2)  # a busy Redis: every handshake of the burst is past admission
        return await check(principal)

    monkeypatch.setattr(sessions, "check", slow_check)
    most = 0
    begin = opening.begin

    def counted_begin() -> int:
        nonlocal most
        ticket = begin()
        most = max(most, len(opening))
        return ticket

    opening.begin = counted_begin  # type: ignore[method-assign]
    results = await asyncio.gather(
        *(connect(gw, token) for _uid, token in users), return_exceptions=True
    )
    admitted = [r for r in results if isinstance(r, aiohttp.ClientWebSocketResponse)]
    refused = [r for r in results if isinstance(r, aiohttp.WSServerHandshakeError)]
    try:
        assert len(admitted) + len(refused) == len(users)
        assert most <= 5 and refused and all(r.status == 503 for r in refused)
        assert len(opening) == 0 and opening.per_second() == len(admitted)
    finally:
        await asyncio.gather(*(ws.close() for ws in admitted))


async def test_a_handshake_refused_after_admission_leaves_no_ticket(
    gw: TestClient[Any, Any],
) -> None:
    """Admitted, then a bad token: 401 before the upgrade, and the socket neither stays
    counted as opening nor counts as a hello."""
    gateway = gw.app[gateway_keys.GATEWAY]
    gateway.opening = opening = Opening(max_opening=5, max_wait_s=60.0, min_opening=5)
    for headers in ({"Authorization": "Bearer not-a-token"}, {"Origin": "https://evil.example"}):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await gw.ws_connect("/ws", headers=headers)
        assert refused.value.status in (401, 403)
    assert len(opening) == 0 and opening.per_second() == 0


def test_a_socket_ended_without_hello_is_not_counted_as_served() -> None:
    now = [0.0]
    opening = Opening(clock=lambda: now[0])
    served, failed = opening.begin(), opening.begin()
    assert opening.end(failed, hello=False) == 0.0 and opening.end(failed) is None
    opening.end(served)
    assert opening.per_second() == 1 and len(opening) == 0


def test_opening_is_full_when_the_oldest_waited_too_long_or_too_many_wait() -> None:
    opening = Opening(max_opening=3, max_wait_s=60.0)
    tickets = [opening.begin() for _ in range(2)]
    assert not opening.full()
    third = opening.begin()
    assert opening.full() and len(opening) == 3
    opening.end(third)
    assert not opening.full()
    slow = Opening(max_opening=100, max_wait_s=0.0)
    ticket = slow.begin()
    assert slow.full()  # the oldest has waited longer than 0 s
    waited = slow.end(ticket)
    assert waited is not None and waited >= 0 and slow.end(ticket) is None  # timed once
    assert not slow.full()
    for t in tickets:
        opening.end(t)
    assert len(opening) == 0


def test_opening_is_full_when_a_newcomer_would_wait_longer_than_the_bound() -> None:
    """Sockets opening / hellos per second is a newcomer's expected wait: past
    max_wait_s handshakes are refused before anyone has waited that long."""
    now = [0.0]
    opening = Opening(max_opening=1000, max_wait_s=0.5, min_opening=10, clock=lambda: now[0])
    tickets = [opening.begin() for _ in range(10)]
    assert opening.full()  # nothing served yet: only min_opening may open
    for t in tickets:
        now[0] += 0.01
        opening.end(t)
    now[0] = 1.0  # a full second in which 10 got their hello: 10 per second
    assert opening.per_second() == 10
    tickets = [opening.begin() for _ in range(9)]
    assert not opening.full()
    tickets.append(opening.begin())
    assert opening.full()  # 10 opening at 10/s: 1 s > 0.5 s
    for t in tickets[:5]:
        opening.end(t)
    assert opening.per_second() == 10  # the last full window's rate still counts
    now[0] = 5.0  # a quiet spell: the rate is measured anew, min_opening still open
    assert opening.per_second() == 0 and opening.full()  # 5 waited 4 s
    for t in tickets[5:]:
        opening.end(t)
    assert not opening.full() and len(opening) == 0


def test_refusals_get_appointments_spaced_at_the_rate_of_hellos() -> None:
    now = [10.0]
    opening = Opening(clock=lambda: now[0])
    for _ in range(150):  # a measured rate: 150 hellos a second
        opening.end(opening.begin())
    now[0] = 11.0
    hints = [opening.refused() for _ in range(600)]  # a crowd refused at once
    assert hints[0] == 1  # one second from now at the soonest
    assert hints == sorted(hints)
    per_second = {h: hints.count(h) for h in set(hints)}
    # no more come back in a second than twice what was served (what is sent is less
    # than what could be, when too few came back)
    assert max(per_second.values()) <= 2 * 150
    assert hints[-1] == 3  # 600 at 300 a second: two seconds of appointments
    now[0] = 30.0  # later, quiet: no hello measured, appointments from now again
    assert opening.refused() == 1


def test_appointments_before_any_hello_use_the_floor_rate_and_stop_at_the_cap() -> None:
    now = [0.0]
    opening = Opening(clock=lambda: now[0])
    hints = [opening.refused() for _ in range(int(FLOOR_HELLOS_PER_S) * 3)]
    assert max(hints.count(h) for h in set(hints)) <= FLOOR_HELLOS_PER_S
    assert hints[-1] == 4
    crowd = [opening.refused() for _ in range(int(FLOOR_HELLOS_PER_S) * 60)]
    assert max(crowd) == MAX_RETRY_AFTER_S  # never sent away for longer


async def test_a_registration_whose_database_fails_raises_and_leaves_nothing_waiting(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    gateway = gw.app[gateway_keys.GATEWAY]
    closed = await create_pool(TEST_DATABASE_URL, min_size=1, max_size=1)
    await closed.close()
    arrivals = Arrivals(
        redis=lambda: gateway.redis, pool=lambda: closed, announce_args=gateway.announce_args
    )
    artisan, _token = await new_artisan(db, gw_settings)
    with pytest.raises(asyncpg.InterfaceError):
        await arrivals.register(str(artisan), is_artisan=True)
    assert arrivals.waiting == 0


async def test_a_registration_without_redis_still_gives_the_profile(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    """Redis down: the socket gets its hello and the refresh loop announces it later."""
    gateway = gw.app[gateway_keys.GATEWAY]
    nowhere = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    arrivals = Arrivals(
        redis=lambda: nowhere, pool=lambda: gateway.pool, announce_args=gateway.announce_args
    )
    artisan, _token = await new_artisan(db, gw_settings, specialty="HEATING")
    try:
        profile = await arrivals.register(str(artisan), is_artisan=True)
    finally:
        await nowhere.aclose()
    assert profile is not None
    assert (profile.verified, profile.specialty, profile.last_fix) == (True, "HEATING", None)
    assert arrivals.waiting == 0


class _Socket:
    """What the refresh reads of a session."""

    def __init__(self, *, is_artisan: bool) -> None:
        self.is_artisan = is_artisan


async def test_the_registry_refresh_announces_every_user_in_chunks(
    gw: TestClient[Any, Any],
) -> None:
    """The refresh holds Redis one chunk at a time (gateway/node.py, ANNOUNCE_CHUNK):
    every user is announced, artisans also get their presence lease."""
    gateway = gw.app[gateway_keys.GATEWAY]
    redis = gw.app[appkeys.REDIS]
    users = [f"00000000-0000-4000-8000-{i:012x}" for i in range(7)]
    artisans = set(users[:3])
    saved = dict(gateway.sessions)
    gateway.sessions.update({u: {_Socket(is_artisan=u in artisans)} for u in users})
    try:
        await gateway.announce_all(chunk=2)
    finally:
        for u in users:
            del gateway.sessions[u]
        assert gateway.sessions == saved
    for u in users:
        assert await redis.zscore(redis_keys.user_nodes(u), gateway.node_id) is not None
        leased = await redis.zscore(redis_keys.PRESENCE_LEASES, u)
        assert (leased is not None) == (u in artisans), u
