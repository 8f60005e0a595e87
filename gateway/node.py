"""This process's gateway runtime: its node id, local sessions, batcher and notifier."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
from aiohttp import web
from prometheus_client import Counter
from redis.asyncio import Redis

from core import appkeys, redis_keys
from core.appkeys import METRICS
from core.gateway_config import GatewayConfig
from core.metrics import Metrics
from core.settings import Settings
from gateway import appkeys as gateway_keys
from gateway import live
from gateway.arrivals import Arrivals, Opening
from gateway.departures import Departures
from gateway.location import REASONS, FixValidator, LocationBatcher, TrackedFix
from gateway.presence_writes import PresenceWrites
from gateway.redis_writer import RedisWriter
from gateway.session import CLOSE_UNAUTHORIZED, Session
from gateway.socket_cap import SocketCap
from gateway.tracking import location_frame
from gateway.turns import PerTurn

# Closing sockets finishing per loop iteration (gateway/turns.py): ~100 µs each, so a
# burst of closes keeps the loop polling the network every few milliseconds.
CLOSES_PER_TURN = 32

log = logging.getLogger("zendo.gateway")

# Users per ANNOUNCE call of the periodic registry refresh. A script holds Redis while it
# runs, every command of every process waiting behind it: 2,000 users hold an idle Redis
# ~13 ms (6 µs each) and one under the README's load 25-60 ms (its slow log); 250 hold
# it ~1.6 ms, for a few more round trips every 10 s.
ANNOUNCE_CHUNK = 250


class Gateway:
    """Created in `setup`; Redis and PostgreSQL are looked up once the app has started."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.settings: Settings = app[appkeys.SETTINGS]
        self.node_id = self.settings.node_id
        self.metrics: Metrics = app[METRICS]
        self.sessions: dict[str, set[Session]] = {}
        self.rejected = {r: self.metrics.pings_rejected.labels(reason=r) for r in REASONS}
        self.notify_failures = Counter(
            "zendo_notify_failures",
            "Frames that could not be pushed",
            registry=self.metrics.registry,
        )
        self.live_repairs = Counter(
            "zendo_live_repairs",
            "Live-state disagreements with PostgreSQL's jobs repaired (gateway/reconciler.py)",
            registry=self.metrics.registry,
        )
        # Set when Redis came back (re-announce users, re-hydrate live state).
        self.resync = asyncio.Event()
        self.epoch: str | None = None
        self._batcher: LocationBatcher | None = None
        # Set by `shutdown`: closing sockets then skip their one-by-one registry cleanup.
        self.shutting_down = False
        # Sockets upgraded and not yet sent their hello (gateway/ws.py bounds them).
        self.opening = Opening()
        # Sockets past their read loop go on to their cleanup a few per loop iteration.
        self.closing = PerTurn(CLOSES_PER_TURN)
        self.departures = Departures(
            lambda: self.redis,
            node_id=self.node_id,
            grace_ms=int(self.settings.ws_offline_grace_s * 1000),
            is_here=self.sessions.__contains__,
        )
        self.sockets = SocketCap(
            lambda: self.redis,
            node_id=self.node_id,
            cap=self.settings.max_sockets_per_user,
            local=self.sessions.get,
        )
        self.arrivals = Arrivals(
            redis=lambda: self.redis, pool=lambda: self.pool, announce_args=self.announce_args
        )
        # Presence frames, one pipeline per loop turn (a storm sends thousands at once).
        self.presence = PresenceWrites(lambda: self.redis)
        # Post-commit writes (live state, remote pushes) whose replies are read later.
        self.writer = RedisWriter(lambda: self.redis)

    @property
    def config(self) -> GatewayConfig:
        return self.app[gateway_keys.GATEWAY_CONFIG]

    @property
    def redis(self) -> Redis:
        return self.app[appkeys.REDIS]

    @property
    def pool(self) -> asyncpg.Pool:
        return self.app[appkeys.PG_POOL]

    @property
    def batcher(self) -> LocationBatcher:
        if self._batcher is None:
            self._batcher = LocationBatcher(
                self.redis,
                chunk=self.config.lua_chunk,
                on_tracked=self.forward_tracked,
                on_accepted=self.metrics.pings_accepted.inc,
                max_inflight=self.config.max_inflight_flushes,
                linger_s=self.config.flush_linger_s,
            )
        return self._batcher

    @property
    def lease_ms(self) -> int:
        """How far a connected artisan's presence lease reaches past a refresh."""
        return int((self.config.registry_ttl_s + self.settings.ws_offline_grace_s) * 1000)

    # --- sessions -------------------------------------------------------------------

    async def open(self, session: Session) -> None:
        """Register a new authenticated socket (and an artisan's profile) here and in
        Redis, batched with the other sockets opening now (`arrivals`)."""
        self.sessions.setdefault(session.user_id, set()).add(session)
        try:
            profile = await self.arrivals.register(session.user_id, is_artisan=session.is_artisan)
        except BaseException:
            self._forget(session)
            raise
        if session.is_artisan:
            if profile is not None:
                session.verified = profile.verified
                session.specialty = profile.specialty
            last = profile.last_fix if profile is not None else None
            session.validator = FixValidator(
                self.settings.ping_rate_per_s,
                last,
                move_m=self.config.writebehind_min_move_m,
                age_s=self.config.writebehind_max_age_s,
            )

    def _forget(self, session: Session) -> bool:
        """Drop the socket from this node's table; True if the user has others here."""
        local = self.sessions.get(session.user_id)
        if local is None:
            return False
        local.discard(session)
        if local:
            return True
        del self.sessions[session.user_id]
        return False

    def close(self, session: Session) -> None:
        """Forget a closed socket; the user's last one here starts their offline grace
        (written to Redis by `departures`, batched)."""
        if not self.shutting_down:
            self.sockets.closed(session)
        if self._forget(session):
            return  # the user still has a socket here
        if self.shutting_down:
            return  # `shutdown` cleans up every user of this node in a few calls
        self.departures.add(session.user_id, is_artisan=session.is_artisan)

    async def _announce(self, user_ids: list[str], artisans: set[str]) -> None:
        """user -> node entries (and artisans' presence leases) valid for another TTL."""
        rows = "".join([f"{u}|{'1' if u in artisans else '0'}\n" for u in user_ids])
        await live.ANNOUNCE(self.redis, self.announce_args(rows))

    def announce_args(self, rows: str) -> list[str | int]:
        """ANNOUNCE's arguments for `rows` ("user|is_artisan" lines)."""
        return [
            redis_keys.USER_NODES_PREFIX,
            redis_keys.PRESENCE_LEASES,
            self.node_id,
            live.now_ms(),
            int(self.config.registry_ttl_s * 1000),
            self.lease_ms,
            rows,
        ]

    async def announce_all(self, chunk: int = ANNOUNCE_CHUNK) -> None:
        """Refresh every local user's registry entry: one script call per `chunk` users."""
        users = list(self.sessions)
        artisans = {u for u, ss in self.sessions.items() if any(s.is_artisan for s in ss)}
        for start in range(0, len(users), chunk):
            await self._announce(users[start : start + chunk], artisans)

    async def shutdown(self) -> None:
        """Bounded graceful shutdown (app.on_shutdown): every socket gets a 1001 close
        frame at once; those still open after `shutdown_close_s` are aborted. Then the
        registry entries of all users here are removed (and artisans' offline grace
        started) in one script call per 2,000 users, instead of one per socket."""
        self.shutting_down = True
        users = [(u, any(s.is_artisan for s in ss)) for u, ss in self.sessions.items()]
        sessions = [s for ss in self.sessions.values() for s in ss]
        if sessions:
            loop = asyncio.get_running_loop()
            closing = [loop.create_task(s.close_now(1001, "server shutdown")) for s in sessions]
            await asyncio.wait(closing, timeout=self.config.shutdown_close_s)
            for session, task in zip(sessions, closing, strict=True):
                if not task.done():
                    task.cancel()
                    session.abort()
            await asyncio.gather(*closing, return_exceptions=True)
        await self.arrivals.stop()
        await self.presence.stop()
        await self.sockets.stop()
        await self.departures.stop()
        await self.departures.write(users + self.departures.drain())

    # --- delivery -------------------------------------------------------------------

    def close_session_local(self, user_id: str, session_id: str) -> int:
        """Close (4401) this process's sockets of a logged-out session; how many."""
        closing = [s for s in self.sessions.get(user_id, ()) if s.session_id == session_id]
        for session in closing:
            session.close_soon(CLOSE_UNAUTHORIZED, "session logged out")
        return len(closing)

    def deliver_local(self, user_id: str, data: bytes) -> int:
        sessions = self.sessions.get(user_id)
        if not sessions:
            return 0
        return sum(1 for s in list(sessions) if s.send_raw(data))

    async def forward_tracked(self, entries: list[TrackedFix]) -> None:
        notifier = self.app[appkeys.NOTIFIER]
        # Local sockets now; the other nodes get the whole flush's frames in one call.
        delivered = [
            (client, notifier.deliver_here(client, frame)[0])
            for client, frame in map(location_frame, entries)
        ]
        await notifier.publish_many([(client, data) for client, data in delivered if data])

    def stats(self) -> dict[str, Any]:
        return {
            "sessions": sum(len(s) for s in self.sessions.values()),
            "users": len(self.sessions),
        }
