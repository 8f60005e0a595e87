"""New sockets' registrations, batched, and a bound on how many wait for one.

An authenticated socket needs, before its `hello`: the artisan's profile from
PostgreSQL, the artisan's live state in Redis (the CONNECT script, which also returns
the last fix the validator starts from) and the user -> node entry (ANNOUNCE). One by
one, a reconnect storm of a city's apps costs one pool acquire and query plus two Redis
round trips per socket, and the sockets wait in line for them.

So an opening socket only queues here; one flush serves every socket queued since the
last one: one query for all the artisans' profiles, then one Redis pipeline with every
CONNECT and a single ANNOUNCE. Sockets arriving while a flush runs form the next batch.

`Opening` counts the sockets between their admission and their `hello` (the token's
check, the upgrade, registering) and how many got their `hello` in the last second. A
newcomer would wait about (sockets opening) / (hellos per second): when that passes
`MAX_WAIT_S`, or the oldest has waited that long, or `MAX_OPENING` are waiting, the
process is not serving new sockets promptly, and the gateway refuses new handshakes
before the upgrade (503 `overloaded`, with Retry-After), so that each admitted socket
gets its `hello` within about a second instead of everyone waiting behind a queue that
grows. The rate bound follows the machine's speed before anyone has waited long (on a
slow machine a thousand admitted sockets took seconds to register); `MIN_OPENING` always
may open, so the rate is measured again after a quiet spell; the count bound caps the
memory a burst can take.

Where the listener screens connections (zendo/system/handshake_screen.py), a handshake
is admitted or refused at the door, when it is accepted: one let through counts as
opening from then (`expect`, by its peer address) and is admitted when it reaches the
WebSocket route (`arrive`), a loop turn or more later. Decided at the route instead,
the hundreds of handshakes the listener accepts in one wake would each find the room
the others are about to take, and the ones refused there cost a request each.

A refusal's Retry-After is an appointment (`Opening.refused`): refused handshakes are
given return times spaced at the rate this process sends hellos, so the crowd comes back
about as fast as it is served. A refusal on the WebSocket route costs the process about
what a request does (~340 µs; at the door, a few system calls): in a reconnect storm on a
starved machine, hints that only grew to 5 s brought every socket back three or four
times, and the refusals took half the process's CPU.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import asyncpg
from redis.asyncio import Redis

from gateway import live, repo
from gateway.coalesce import Coalescer

log = logging.getLogger("zendo.gateway")

# Sockets between their admission and their hello, at most; past it handshakes are refused.
MAX_OPENING = 1000
# ... and how long a newcomer may expect to wait (or the oldest have waited) before new
# handshakes are refused.
MAX_WAIT_S = 0.5
# Sockets that may always be opening, whatever the recent rate of hellos (a slow 2-core
# machine registers about 300 a second: this is a third of a second of its work).
MIN_OPENING = 100
# The rate of hellos is counted over windows this long.
RATE_WINDOW_S = 1.0
# A refused handshake's Retry-After, in seconds: its appointment, 1 s from now at the
# soonest, at most this far (the longest back-off of the README's reconnect rule).
MAX_RETRY_AFTER_S = 30
# Appointments per second per hello sent in the last second: the hellos measure what the
# process did, which is less than it could do when too few came back; spaced at that rate
# alone, a storm's crowd came back ever more slowly (half of it served after 15-30 s).
APPOINTMENTS_PER_HELLO = 2.0
# The hello rate appointments are spaced at, at the least: a quiet process has measured
# none, and the first second of a storm measures less than the process can do.
FLOOR_HELLOS_PER_S = 100.0
# A handshake expected at the WebSocket route (`Opening.expect`) that has not arrived
# within this long is not counted any more (its client went away on the way); arriving
# later, it is judged at the route.
TRANSIT_S = 2.0
# Sockets registered per flush (bounds one query, one pipeline and one Lua call).
CHUNK = 500


@dataclass(slots=True)
class Profile:
    """What an artisan's socket learns from its registration."""

    verified: bool
    specialty: str
    last_fix: tuple[float, float, int] | None


class Opening:
    """The sockets between their admission and their hello, oldest first, and the rate at
    which they get their hello."""

    def __init__(
        self,
        max_opening: int = MAX_OPENING,
        max_wait_s: float = MAX_WAIT_S,
        min_opening: int = MIN_OPENING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_opening = max_opening
        self.max_wait_s = max_wait_s
        self.min_opening = min_opening
        self._clock = clock
        self._since: dict[int, float] = {}  # insertion order: the oldest first
        self._next = 0
        self._window_start = clock()
        self._served_now = 0  # hellos in the current window
        self._served_before = 0  # ... in the one before
        self._next_slot = 0.0  # the clock's time of the next free appointment
        # handshakes admitted at the door, by peer address: when (oldest first)
        self._transit: dict[object, float] = {}

    def __len__(self) -> int:
        return len(self._since)

    def expect(self, peer: object) -> None:
        """The handshake from `peer` was admitted at the door: it counts as opening until
        it `arrive`s at the WebSocket route (or `TRANSIT_S` has passed)."""
        self._transit[peer] = self._clock()

    def arrive(self, peer: object) -> bool:
        """A handshake from `peer` reached the WebSocket route: True when it was admitted
        at the door (and is not refused now)."""
        return self._transit.pop(peer, None) is not None

    def _in_transit(self) -> int:
        cutoff = self._clock() - TRANSIT_S
        transit = self._transit
        while transit:
            peer, since = next(iter(transit.items()))
            if since >= cutoff:
                break
            del transit[peer]
        return len(transit)

    def begin(self) -> int:
        self._next += 1
        self._since[self._next] = self._clock()
        return self._next

    def end(self, ticket: int, *, hello: bool = True) -> float | None:
        """Seconds since `begin`, the first time (None after); counts a hello, unless the
        socket ended without one (refused after its admission, closed, failed): the rate
        of hellos is what the bounds trust."""
        since = self._since.pop(ticket, None)
        if since is None:
            return None
        now = self._clock()
        self._roll(now)
        if hello:
            self._served_now += 1
        return now - since

    def _roll(self, now: float) -> None:
        elapsed = now - self._window_start
        if elapsed >= RATE_WINDOW_S:
            self._served_before = self._served_now if elapsed < 2 * RATE_WINDOW_S else 0
            self._served_now = 0
            self._window_start = now

    def refused(self) -> int:
        """A refused handshake's Retry-After (s): the next free appointment, one second
        from now at the soonest; appointments are spaced at `APPOINTMENTS_PER_HELLO`
        times the rate of hellos (`FLOOR_HELLOS_PER_S` at the least), so the refused
        crowd comes back about as fast as it is served instead of being refused again
        and again."""
        now = self._clock()
        rate = max(APPOINTMENTS_PER_HELLO * self.per_second(), FLOOR_HELLOS_PER_S)
        slot = min(max(self._next_slot, now + 1.0), now + MAX_RETRY_AFTER_S)
        self._next_slot = slot + 1.0 / rate
        return math.ceil(slot - now - 1e-9)  # whole seconds, never before the slot

    def per_second(self) -> float:
        """Hellos per second: the last full window's, or the current one's if higher."""
        self._roll(self._clock())
        return max(self._served_before, self._served_now) / RATE_WINDOW_S

    def full(self) -> bool:
        opening = len(self._since) + self._in_transit()
        if opening >= self.max_opening:
            return True
        if opening >= self.min_opening and opening >= self.per_second() * self.max_wait_s:
            return True  # a newcomer would wait longer than max_wait_s
        oldest = next(iter(self._since.values()), None)
        return oldest is not None and self._clock() - oldest > self.max_wait_s


@dataclass(slots=True, frozen=True)
class _Arrival:
    user_id: str
    is_artisan: bool


class Arrivals:
    def __init__(
        self,
        *,
        redis: Callable[[], Redis],
        pool: Callable[[], asyncpg.Pool],
        announce_args: Callable[[str], list[str | int]],
        chunk: int = CHUNK,
    ) -> None:
        self._redis = redis
        self._pool = pool
        self._announce_args = announce_args
        # one flush: one query, one pipeline (gateway/coalesce.py)
        self._calls: Coalescer[_Arrival, Profile | None] = Coalescer(
            self._register_batch, chunk=chunk, name="gateway-arrivals"
        )

    @property
    def waiting(self) -> int:
        """Sockets queued or in the flush under way."""
        return self._calls.waiting

    @property
    def batches(self) -> int:
        """Flushes so far."""
        return self._calls.batches

    async def register(self, user_id: str, *, is_artisan: bool) -> Profile | None:
        """Queue a socket's registration and wait for it; an artisan's profile (None for
        a client, or an artisan with no profile row). Raises if PostgreSQL failed."""
        return await self._calls.call(_Arrival(user_id, is_artisan))

    async def stop(self) -> None:
        await self._calls.stop()

    async def _register_batch(self, batch: Sequence[_Arrival]) -> list[Profile | None]:
        profiles = await self._register(batch)
        return [profiles.get(a.user_id) for a in batch]

    async def _register(self, batch: Sequence[_Arrival]) -> dict[str, Profile]:
        artisan_ids = list(dict.fromkeys(a.user_id for a in batch if a.is_artisan))
        rows: list[asyncpg.Record] = []
        if artisan_ids:
            async with self._pool().acquire() as conn:
                rows = await repo.live_profiles(
                    conn, artisan_ids=[uuid.UUID(a) for a in artisan_ids]
                )
        profiles = {
            str(r["user_id"]): Profile(r["status"] == "VERIFIED", r["specialty"], None)
            for r in rows
        }
        user_ids = list(dict.fromkeys(a.user_id for a in batch))
        try:
            replies = await self._write(rows, user_ids, set(artisan_ids))
        except Exception as exc:  # Redis down: the refresh loop announces them later
            log.warning("registration of %d socket(s) in Redis failed: %s", len(batch), exc)
            return profiles
        for row, reply in zip(rows, replies, strict=False):
            if isinstance(reply, BaseException):
                log.warning("live state unavailable for %s: %s", row["user_id"], reply)
                continue
            lat, lon, ts, _status = cast(list[str], reply)
            if lat and lon and ts:
                profiles[str(row["user_id"])].last_fix = (float(lat), float(lon), int(float(ts)))
        return profiles

    async def _write(
        self, rows: Sequence[asyncpg.Record], user_ids: list[str], artisans: set[str]
    ) -> list[object]:
        """Every CONNECT and one ANNOUNCE, in one pipeline (one round trip)."""
        redis = self._redis()
        rows_arg = "".join(f"{u}|{'1' if u in artisans else '0'}\n" for u in user_ids)

        def fill(calls: live.ScriptCalls) -> list[live.Script]:
            live.queue_connects(calls, redis, rows)
            live.ANNOUNCE.queue(calls, redis, self._announce_args(rows_arg))
            return [live.CONNECT, live.ANNOUNCE]

        replies = await live.run_pipeline(redis, fill)
        if isinstance(replies[-1], BaseException):
            log.warning("announce of %d user(s) failed: %s", len(user_ids), replies[-1])
        return replies[:-1]
