"""Live artisan state in Redis: the per-artisan hash, GEO sets per specialty, H3
buckets and the events stream. Every change is one atomic Lua script (gateway/lua.py)
that also appends a snapshot to the stream, so every ArtisanIndex mirror follows.

Functions other contexts call: `set_busy`, `set_available`, `update_profile`, `read_live`.
"""

from __future__ import annotations

import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from core import redis_keys
from core.gateway_config import RECENT_FIX_S
from core.redispool import send_loading
from gateway import lua

# The events stream keeps about this much history (XADD MINID ~, approximate): a fix
# batch is one entry, so a cap in entries would not bound memory; at 10,000 fixes/s,
# 30 s is ~30 MB. A mirror that falls further behind loses events (it rebuilds after a
# Redis error only).
STREAM_RETAIN_MS = 30_000
# "Recent fix": ONLINE needs a fix at most this old at the end of a job (set_available);
# the same value as the presence requests and the stale sweep (core.gateway_config).
RECENT_FIX_MS = round(RECENT_FIX_S * 1000)


class Script:
    """A script of gateway/lua.py, run through the object redis-py's `register_script`
    returns for each client: EVALSHA, and SCRIPT LOAD on NOSCRIPT (after a restart)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._by_client: weakref.WeakKeyDictionary[Redis, AsyncScript] = weakref.WeakKeyDictionary()

    def registered(self, redis: Redis) -> AsyncScript:
        script = self._by_client.get(redis)
        if script is None:
            script = self._by_client[redis] = redis.register_script(self.source)
        return script

    async def __call__(self, redis: Redis, args: Sequence[Any], keys: Sequence[str] = ()) -> Any:
        return await self.registered(redis)(keys=list(keys), args=list(args))

    def queue(
        self,
        calls: ScriptCalls,
        redis: Redis,
        args: Sequence[Any],
        keys: Sequence[str] = (),
    ) -> None:
        """Add a call to `run_pipeline`'s round trip (which does not load scripts: it
        loads them on NOSCRIPT and sends the calls again)."""
        calls.evalsha(self.registered(redis).sha, len(keys), *keys, *args)


class ScriptCalls:
    """The EVALSHA calls `run_pipeline` sends in one round trip."""

    __slots__ = ("commands",)

    def __init__(self) -> None:
        self.commands: list[tuple[Any, ...]] = []

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> None:
        self.commands.append(("EVALSHA", sha, numkeys, *keys_and_args))


APPLY_FIXES = Script(lua.APPLY_FIXES)
CONNECT = Script(lua.CONNECT)
PRESENCE = Script(lua.PRESENCE)
SET_BUSY = Script(lua.SET_BUSY)
SET_AVAILABLE = Script(lua.SET_AVAILABLE)
UPDATE_PROFILE = Script(lua.UPDATE_PROFILE)
EXPIRE_LEASES = Script(lua.EXPIRE_LEASES)
EXPIRE_STALE = Script(lua.EXPIRE_STALE)
DISCONNECT_MANY = Script(lua.DISCONNECT_MANY)
ANNOUNCE = Script(lua.ANNOUNCE)
POP_DIRTY = Script(lua.POP_DIRTY)
PUBLISH_TO_USERS = Script(lua.PUBLISH_TO_USERS)
TRACK_START = Script(lua.TRACK_START)
TRACK_STOP = Script(lua.TRACK_STOP)
SCAN_JOBS = Script(lua.SCAN_JOBS)
LEAD = Script(lua.LEAD)


_COMMON_ARGS = (
    redis_keys.GEO_ONLINE_PREFIX,
    redis_keys.H3_BUCKET_PREFIX,
    redis_keys.ARTISAN_EVENTS,
    STREAM_RETAIN_MS,
    redis_keys.LIVE_DIRTY,
    redis_keys.LIVE_IDS,
    redis_keys.LIVE_FRESH,
)


async def run_pipeline(redis: Redis, fill: Callable[[ScriptCalls], Iterable[Script]]) -> list[Any]:
    """One round trip: the script calls `fill` queues (it returns the scripts it called).
    A command's error comes back as its reply; on NOSCRIPT (Redis restarted) the scripts
    are loaded and the calls sent once more (`send_loading`): the calls queued here are
    all idempotent."""
    calls = ScriptCalls()
    scripts = set(fill(calls))
    return await send_loading(redis, calls.commands, [script.source for script in scripts])


def common_args() -> list[Any]:
    """The ARGV head every live-state script starts with (see gateway/lua.py)."""
    return list(_COMMON_ARGS)


def now_ms() -> int:
    return int(time.time() * 1000)


async def set_busy(redis: Redis, artisan_id: uuid.UUID | str, version: int = 0) -> bool:
    """The artisan accepted a job: BUSY, out of the GEO/H3 sets and ineligible in every
    index. `version`: the artisan's live version of that change (0: unversioned); False
    when a newer change was applied already (nothing changed)."""
    return bool(await SET_BUSY(redis, set_busy_args(artisan_id, version)))


def set_busy_args(artisan_id: uuid.UUID | str, version: int = 0) -> list[Any]:
    aid = str(artisan_id)
    return [*common_args(), aid, redis_keys.live_artisan(aid), version, redis_keys.LIVE_JOBS]


async def set_available(redis: Redis, artisan_id: uuid.UUID | str, version: int = 0) -> str | None:
    """The job ended (COMPLETED or CANCELLED): ONLINE again if the artisan has a fix from
    the last RECENT_FIX_MS (2 minutes) and is verified and has not asked to be OFFLINE,
    else OFFLINE (their next fix makes them ONLINE). Returns the new status, or None when
    a change newer than `version` was applied already (nothing changed)."""
    status = await SET_AVAILABLE(redis, set_available_args(artisan_id, version))
    return None if status is None else str(status)


def set_available_args(artisan_id: uuid.UUID | str, version: int = 0) -> list[Any]:
    aid = str(artisan_id)
    return [*common_args(), aid, redis_keys.live_artisan(aid), now_ms(), RECENT_FIX_MS, version]


async def update_profile(
    redis: Redis,
    artisan_id: uuid.UUID | str,
    *,
    specialty: str | None = None,
    level: str | None = None,
    rating: float | None = None,
    verified: bool | None = None,
) -> None:
    """Mirror a profile change (review -> rating, admin verify/reject, specialty edit) into
    the live state and the indexes. `verified=False` forces OFFLINE. No-op for an artisan
    who never connected (their next connection reads PostgreSQL)."""
    args = update_profile_args(
        artisan_id, specialty=specialty, level=level, rating=rating, verified=verified
    )
    if args is not None:
        await UPDATE_PROFILE(redis, args)


def update_profile_args(
    artisan_id: uuid.UUID | str,
    *,
    specialty: str | None = None,
    level: str | None = None,
    rating: float | None = None,
    verified: bool | None = None,
) -> list[Any] | None:
    """UPDATE_PROFILE's arguments; None when nothing changes."""
    aid = str(artisan_id)
    pairs: list[Any] = []
    if specialty is not None:
        pairs += ["specialty", specialty]
    if level is not None:
        pairs += ["level", level]
    if rating is not None:
        pairs += ["rating", repr(float(rating))]
    if verified is not None:
        pairs += ["verified", "1" if verified else "0"]
    if not pairs:
        return None
    return [*common_args(), aid, redis_keys.live_artisan(aid), *pairs]


async def read_live(redis: Redis, artisan_id: uuid.UUID | str) -> dict[str, Any] | None:
    """{lat, lon, ts (epoch ms), h3 (hex), current_status} of the last accepted fix, or None."""
    values = await redis.hmget(
        redis_keys.live_artisan(str(artisan_id)), ["lat", "lon", "ts", "h3", "current_status"]
    )
    lat, lon, ts, cell, status = values
    if lat is None or lon is None or ts is None:
        return None
    return {
        "lat": float(lat),
        "lon": float(lon),
        "ts": int(float(ts)),
        "h3": cell,
        "current_status": status or "OFFLINE",
    }


async def connect_artisan(
    redis: Redis,
    artisan_id: str,
    *,
    specialty: str,
    level: str,
    rating: float,
    verified: bool,
) -> tuple[tuple[float, float, int] | None, str]:
    """Store the profile read from PostgreSQL; returns (last fix or None, current status)."""
    lat, lon, ts, status = await CONNECT(
        redis,
        connect_args(
            artisan_id, specialty=specialty, level=level, rating=rating, verified=verified
        ),
    )
    last = None
    if lat and lon and ts:
        last = (float(lat), float(lon), int(float(ts)))
    return last, str(status)


def queue_connects(calls: ScriptCalls, redis: Redis, profiles: Iterable[asyncpg.Record]) -> None:
    """CONNECT calls for one round trip (`run_pipeline`), one per profile row of PostgreSQL (user_id,
    specialty, level, rating, status: `gateway.repo.live_profiles`)."""
    for row in profiles:
        args = connect_args(
            str(row["user_id"]),
            specialty=row["specialty"],
            level=row["level"],
            rating=float(row["rating"]),
            verified=row["status"] == "VERIFIED",
        )
        CONNECT.queue(calls, redis, args)


def connect_args(
    artisan_id: str, *, specialty: str, level: str, rating: float, verified: bool
) -> list[Any]:
    return [
        *common_args(),
        artisan_id,
        redis_keys.live_artisan(artisan_id),
        specialty,
        level,
        repr(float(rating)),
        "1" if verified else "0",
    ]


def presence_args(artisan_id: str, wanted: str, now: int, recent_fix_ms: int) -> list[Any]:
    """PRESENCE's arguments: the artisan wants `wanted` (ONLINE or OFFLINE) at `now`."""
    return [
        *common_args(),
        artisan_id,
        redis_keys.live_artisan(artisan_id),
        wanted,
        now,
        recent_fix_ms,
    ]


async def expire_leases(redis: Redis, limit: int = 500) -> tuple[int, int]:
    """The lease sweep: OFFLINE the artisans whose presence lease ran out (no socket
    anywhere for the grace), at most `limit` leases per call. Returns (leases ended,
    artisans that went OFFLINE)."""
    ended, offline = await EXPIRE_LEASES(
        redis,
        [
            *common_args(),
            redis_keys.PRESENCE_LEASES,
            redis_keys.LIVE_ARTISAN_PREFIX,
            now_ms(),
            limit,
        ],
    )
    return int(ended), int(offline)


async def expire_stale(redis: Redis, recent_fix_ms: int, limit: int = 1000) -> int:
    """The stale sweep: ONLINE artisans whose last fix is older than `recent_fix_ms` go
    OFFLINE (until their next fix). Returns how many (at most `limit` per call)."""
    count = await EXPIRE_STALE(
        redis,
        [*common_args(), redis_keys.LIVE_ARTISAN_PREFIX, now_ms() - recent_fix_ms, limit],
    )
    return int(count)
