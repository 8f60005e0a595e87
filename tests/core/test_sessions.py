"""This process's copy of the revoked sessions (core/sessions.py): once synced a check
costs no Redis command; a revocation on another process is refused within moments,
on this one at once; the copy loads what was revoked before it started and again
after its subscription broke. Against the real Redis, two clients as two processes."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from core import redis_keys
from core.errors import Unauthorized
from core.principal import Principal
from core.sessions import RevokedSessions
from gateway.tasks import stop_tasks
from tests.conftest import TEST_REDIS_URL

TTL_S = 900


def _principal(session_id: str | None) -> Principal:
    return Principal(
        user_id=uuid.uuid4(), role="CLIENT", token_id="t", expires_at=0, session_id=session_id
    )


async def _eventually(check: Callable[[], Awaitable[bool]], within: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "not within the delay"
        await asyncio.sleep(0.01)


async def _refused(copy: RevokedSessions, sid: str) -> bool:
    try:
        await copy.check(_principal(sid))
    except Unauthorized as exc:
        assert exc.code == "session_revoked"
        return True
    return False


async def _exists_calls(redis: Redis) -> int:
    stats: dict[str, Any] = await redis.info("commandstats")
    return int(stats.get("cmdstat_exists", {}).get("calls", 0))


@pytest.fixture
async def processes(redis: Redis) -> AsyncIterator[Callable[[], Awaitable[RevokedSessions]]]:
    """Each call: a process's copy on its own client, following (synced on return)."""
    clients: list[Redis] = []
    tasks: list[asyncio.Task[None]] = []

    async def start() -> RevokedSessions:
        client = Redis.from_url(TEST_REDIS_URL, decode_responses=True)
        clients.append(client)
        copy = RevokedSessions(client)
        tasks.append(asyncio.create_task(copy.follow()))
        await _eventually(lambda: _true(copy.synced))
        return copy

    yield start
    await stop_tasks(*tasks)
    for client in clients:
        await client.aclose()


async def _true(value: bool) -> bool:
    return value


async def test_a_synced_copy_checks_without_redis_and_sees_other_processes(
    redis: Redis, processes: Callable[[], Awaitable[RevokedSessions]]
) -> None:
    here, there = await processes(), await processes()
    sid = str(uuid.uuid4())
    calls = await _exists_calls(redis)
    for _ in range(50):
        await here.check(_principal(sid))
        await here.check(_principal(None))
    assert await _exists_calls(redis) == calls  # no round trip per check
    await there.revoke(sid, access_token_ttl_s=TTL_S)
    assert await _refused(there, sid)  # at once where it was revoked
    await _eventually(lambda: _refused(here, sid), within=1.0)
    assert not await _refused(here, str(uuid.uuid4()))  # other sessions still pass
    assert await redis.exists(redis_keys.revoked_session(sid))  # the per-session key too


async def test_a_copy_starting_later_loads_what_was_revoked_before(
    processes: Callable[[], Awaitable[RevokedSessions]],
) -> None:
    first = await processes()
    sid = str(uuid.uuid4())
    await first.revoke(sid, access_token_ttl_s=TTL_S)
    late = await processes()
    assert await _refused(late, sid)


async def test_before_it_is_synced_a_copy_asks_redis(redis: Redis) -> None:
    copy = RevokedSessions(redis)  # not following: not synced
    sid = str(uuid.uuid4())
    await redis.set(redis_keys.revoked_session(sid), b"1", ex=60)
    calls = await _exists_calls(redis)
    assert await _refused(copy, sid)
    assert not await _refused(copy, str(uuid.uuid4()))
    assert await _exists_calls(redis) == calls + 2


async def test_after_its_subscription_broke_a_copy_reloads(
    redis: Redis, processes: Callable[[], Awaitable[RevokedSessions]]
) -> None:
    here = await processes()
    sid = str(uuid.uuid4())
    # a revocation whose message this copy never heard (published while it was away)
    await redis.zadd(redis_keys.REVOKED_SESSIONS, {sid: time.time() * 1000 + 600_000})
    assert not await _refused(here, sid)
    assert await redis.client_kill_filter(_type="pubsub") >= 1
    await _eventually(lambda: _refused(here, sid))  # reloaded on reconnecting
    await _eventually(lambda: _true(here.synced))


async def test_a_malformed_message_is_ignored(
    redis: Redis, processes: Callable[[], Awaitable[RevokedSessions]]
) -> None:
    copy = await processes()
    await redis.publish(redis_keys.REVOCATIONS_CHANNEL, "no-expiry-here")
    sid = str(uuid.uuid4())
    await redis.publish(redis_keys.REVOCATIONS_CHANNEL, f"{sid} 99999999999999")
    await _eventually(lambda: _refused(copy, sid), within=1.0)
    assert copy.synced
