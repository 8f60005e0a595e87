"""The ops feed on `/ws`: ADMIN sockets send `ops.subscribe`, get one `ops.snapshot`
(artisans ONLINE and BUSY, open jobs, supply/demand cells), then `ops.event` frames.

Every process serves its own subscribers from the shared truth, so the feed is the
same whichever process an admin's socket landed on: artisans from the live state's
events stream in Redis (the one every index mirror tails), jobs and offers from
PostgreSQL (intervention_events by id, the offers of the jobs still searching). The
hub only runs while this process has subscribers; with none it drops its state and
sleeps, costing the hot paths nothing.

One `ops.event` frame per tick carries that tick's `events` (a batch): job.created,
job.status, offer.sent / held / accepted / declined / expired / taken / revoked,
artisan.status (ONLINE, BUSY, OFFLINE), artisan.positions (each artisan at most once
per POSITIONS_EVERY_S) and cells (every CELLS_EVERY_S).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

import asyncpg
import h3
from aiohttp import web
from redis.asyncio import Redis

from core import appkeys, redis_keys
from core.domain import OPEN_INTERVENTION_STATUSES
from gateway import appkeys as gateway_keys
from gateway import ops_repo
from gateway.mirror import parse_event
from gateway.session import Session, encode
from gateway.tasks import stop_tasks

log = logging.getLogger("zendo.gateway.ops")

TICK_S: Final = 0.25
POSITIONS_EVERY_S: Final = 1.0
CELLS_EVERY_S: Final = 5.0
CELL_RES: Final = 7
DEMAND_WINDOW_S: Final = 15 * 60
# Event ids are taken at insert and become visible at commit, so a lower id can
# appear after a higher one: each poll looks back this many ids (deduplicated).
EVENT_LOOKBACK: Final = 512
EVENT_BATCH: Final = 2000
_STREAM_BATCH: Final = 5000
_HASH_FIELDS: Final = ("lat", "lon", "current_status", "specialty")
_ON_MAP: Final = frozenset({"ONLINE", "BUSY"})
_OPEN: Final = frozenset(OPEN_INTERVENTION_STATUSES)
_OFFER_KINDS: Final = {
    "PENDING": "offer.sent",
    "HELD": "offer.held",  # best_accept: an in-time accept awaiting the award
    "ACCEPTED": "offer.accepted",
    "DECLINED": "offer.declined",
    "EXPIRED": "offer.expired",
    "TAKEN": "offer.taken",
    "REVOKED": "offer.revoked",
}


@dataclass(slots=True)
class Artisan:
    lat: float
    lon: float
    status: str
    specialty: str
    cell: str

    def json(self, artisan_id: str) -> dict[str, Any]:
        return {
            "id": artisan_id,
            "lat": self.lat,
            "lon": self.lon,
            "status": self.status,
            "specialty": self.specialty,
        }


def _job_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "status": row["status"],
        "specialty": row["specialty"],
        "lat": row["lat"],
        "lon": row["lon"],
        "artisan_id": str(row["artisan_id"]) if row["artisan_id"] is not None else None,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def cell_of(lat: float, lon: float) -> str:
    return cast(str, h3.latlng_to_cell(lat, lon, CELL_RES))


class OpsHub:
    """This process's ops feed: its subscribers and, while it has any, the state."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.subscribers: set[Session] = set()
        self.wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._boundaries: dict[str, list[list[float]]] = {}
        self._clear()

    def _clear(self) -> None:
        self.warm = False
        self.artisans: dict[str, Artisan] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        # Offers of the jobs followed: offer id -> (job id, last status seen).
        self.offers: dict[uuid.UUID, tuple[uuid.UUID, str]] = {}
        self.searching: set[uuid.UUID] = set()  # jobs whose offers are followed
        self.demand: deque[tuple[float, str]] = deque()  # (created epoch s, cell)
        self.seen_events: set[int] = set()
        self.last_event_id = 0
        self.stream_id = "0-0"
        self.moved: set[str] = set()
        self.next_positions = 0.0
        self.next_cells = 0.0

    @property
    def redis(self) -> Redis:
        return self.app[appkeys.REDIS]

    @property
    def pool(self) -> asyncpg.Pool:
        return self.app[appkeys.PG_POOL]

    # --- subscribers ----------------------------------------------------------------

    async def subscribe(self, session: Session) -> None:
        if session.role != "ADMIN":
            session.send_error("forbidden", "The ops feed is for ADMIN users")
            return
        async with self._lock:
            if not self.warm:
                await self._load()
        if session.closing:
            self.wake.set()  # the loop drops the state if nobody else subscribed
            return
        self.subscribers.add(session)
        session.send(self.snapshot())
        self.wake.set()

    def unsubscribe(self, session: Session) -> None:
        self.subscribers.discard(session)

    def snapshot(self) -> dict[str, Any]:
        return {
            "type": "ops.snapshot",
            "server_time": datetime.now(UTC),
            "artisans": [a.json(aid) for aid, a in self.artisans.items()],
            "jobs": list(self.jobs.values()),
            "cells": self.cells(),
        }

    def _broadcast(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        data = encode({"type": "ops.event", "ts": int(time.time() * 1000), "events": events})
        for session in list(self.subscribers):
            if not session.send_raw(data):
                self.subscribers.discard(session)

    # --- state ----------------------------------------------------------------------

    async def _load(self) -> None:
        """Note where the stream and the events are, then read the state: whatever
        changes meanwhile is replayed by the first ticks (updates are idempotent)."""
        self._clear()
        newest = await self.redis.xrevrange(redis_keys.ARTISAN_EVENTS, count=1)
        self.stream_id = cast(str, newest[0][0]) if newest else "0-0"
        async with self.pool.acquire() as conn:
            self.last_event_id = await ops_repo.last_event_id(conn)
            self.seen_events = set(
                await ops_repo.event_ids_after(conn, after_id=self.last_event_id - EVENT_LOOKBACK)
            )
            jobs = await ops_repo.open_jobs(conn)
            since = datetime.now(UTC) - timedelta(seconds=DEMAND_WINDOW_S)
            recent = await ops_repo.recent_jobs(conn, since=since)
        for row in sorted(recent, key=lambda r: r["created_at"]):
            self.demand.append((row["created_at"].timestamp(), cell_of(row["lat"], row["lon"])))
        for row in jobs:
            self.jobs[str(row["id"])] = _job_json(row)
            if row["status"] == "SEARCHING":
                self.searching.add(row["id"])
        ids = sorted(cast("set[str]", await self.redis.smembers(redis_keys.LIVE_IDS)))
        for start in range(0, len(ids), 2000):
            part = ids[start : start + 2000]
            pipe = self.redis.pipeline(transaction=False)
            for aid in part:
                pipe.hmget(redis_keys.live_artisan(aid), _HASH_FIELDS)
            for aid, (lat, lon, status, spec) in zip(part, await pipe.execute(), strict=True):
                if status in _ON_MAP and lat and lon:
                    la, lo = float(lat), float(lon)
                    self.artisans[aid] = Artisan(la, lo, status, spec or "", cell_of(la, lo))
        async with self.pool.acquire() as conn:
            offers = await ops_repo.offers_of(conn, intervention_ids=list(self.searching))
        self.offers = {o["id"]: (o["intervention_id"], o["status"]) for o in offers}
        self.warm = True

    def _artisan_rows(self, rows: list[tuple[str, ...]]) -> list[dict[str, Any]]:
        """Apply stream rows (id, lat, lon, specialty, level, rating, status); returns
        the status changes; position changes are kept for the next positions batch."""
        events: list[dict[str, Any]] = []
        for aid, lat, lon, spec, _level, _rating, status in rows:
            known = self.artisans.get(aid)
            if status not in _ON_MAP:
                if status and known is not None:
                    del self.artisans[aid]
                    self.moved.discard(aid)
                    events.append(
                        {"kind": "artisan.status", "artisan": {"id": aid, "status": status}}
                    )
                continue
            if known is None:
                if not (lat and lon):
                    continue
                la, lo = float(lat), float(lon)
                known = self.artisans[aid] = Artisan(la, lo, status, spec, cell_of(la, lo))
                events.append({"kind": "artisan.status", "artisan": known.json(aid)})
                continue
            if lat and lon and (float(lat), float(lon)) != (known.lat, known.lon):
                known.lat, known.lon = float(lat), float(lon)
                known.cell = cell_of(known.lat, known.lon)
                self.moved.add(aid)
            if spec:
                known.specialty = spec
            if status != known.status:
                known.status = status
                self.moved.discard(aid)
                events.append({"kind": "artisan.status", "artisan": known.json(aid)})
        return events

    def _event_rows(self, rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for row in rows:
            event_id: int = row["event_id"]
            if event_id in self.seen_events:
                continue
            self.seen_events.add(event_id)
            self.last_event_id = max(self.last_event_id, event_id)
            job = _job_json(row)
            created = row["from_status"] is None
            if created:
                self.demand.append((row["created_at"].timestamp(), cell_of(job["lat"], job["lon"])))
            if job["status"] in _OPEN:
                self.jobs[job["id"]] = job
            else:
                self.jobs.pop(job["id"], None)
            if job["status"] == "SEARCHING":
                self.searching.add(row["id"])
            events.append(
                {
                    "kind": "job.created" if created else "job.status",
                    "job": job,
                    "from_status": row["from_status"],
                    "to_status": row["to_status"],
                    "actor_role": row["actor_role"],
                    "at": row["at"],
                }
            )
        floor = self.last_event_id - EVENT_LOOKBACK
        self.seen_events = {e for e in self.seen_events if e > floor}
        return events

    def _offer_rows(self, rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for row in sorted(rows, key=lambda r: r["created_at"]):
            status = row["status"]
            known = self.offers.get(row["id"])
            if known is not None and known[1] == status:
                continue
            if known is None and status != "PENDING":
                # Answered between two polls: its sending is news too.
                events.append(self._offer_event("PENDING", row))
            self.offers[row["id"]] = (row["intervention_id"], status)
            events.append(self._offer_event(status, row))
        return events

    @staticmethod
    def _offer_event(status: str, row: asyncpg.Record) -> dict[str, Any]:
        return {
            "kind": _OFFER_KINDS.get(status, "offer.status"),
            "offer_id": str(row["id"]),
            "intervention_id": str(row["intervention_id"]),
            "artisan_id": str(row["artisan_id"]),
            "distance_km": round(float(row["distance_km"]), 3),
        }

    def cells(self) -> list[dict[str, Any]]:
        """Res-7 H3 cells with ONLINE artisans or jobs created in the last 15 minutes."""
        horizon = time.time() - DEMAND_WINDOW_S
        while self.demand and self.demand[0][0] < horizon:
            self.demand.popleft()
        supply: dict[str, int] = {}
        for artisan in self.artisans.values():
            if artisan.status == "ONLINE":
                supply[artisan.cell] = supply.get(artisan.cell, 0) + 1
        demand: dict[str, int] = {}
        for _ts, cell in self.demand:
            demand[cell] = demand.get(cell, 0) + 1
        return [
            {
                "h3": cell,
                "online": supply.get(cell, 0),
                "demand": demand.get(cell, 0),
                "boundary": self._boundary(cell),
            }
            for cell in sorted(supply.keys() | demand.keys())
        ]

    def _boundary(self, cell: str) -> list[list[float]]:
        found = self._boundaries.get(cell)
        if found is None:
            found = [[round(la, 5), round(lo, 5)] for la, lo in h3.cell_to_boundary(cell)]
            self._boundaries[cell] = found
        return found

    # --- the loop -------------------------------------------------------------------

    async def tick(self) -> None:
        """One round: the stream's new entries, new status events, offers of the jobs
        searching; then one frame with what changed."""
        reply = await self.redis.xread(
            {redis_keys.ARTISAN_EVENTS: self.stream_id}, count=_STREAM_BATCH
        )
        rows: list[tuple[str, ...]] = []
        if reply:
            entries: list[tuple[str, dict[str, str]]]
            _stream, entries = cast("list[list[Any]]", reply)[0]
            rows = [row for _eid, f in entries for row in parse_event(f["d"])]
            self.stream_id = entries[-1][0]
        async with self.pool.acquire() as conn:
            new = await ops_repo.events_after(
                conn, after_id=self.last_event_id - EVENT_LOOKBACK, limit=EVENT_BATCH
            )
            watched = self.searching | {r["id"] for r in new}
            offers = (
                await ops_repo.offers_of(conn, intervention_ids=list(watched)) if watched else []
            )
        events = self._artisan_rows(rows)
        events += self._event_rows(new)
        events += self._offer_rows(offers)
        # Jobs no longer searching had their last offers read above: stop following.
        left = {j for j in watched if self.jobs.get(str(j), {}).get("status") != "SEARCHING"}
        if left:
            self.searching -= left
            self.offers = {o: v for o, v in self.offers.items() if v[0] not in left}
        now = time.monotonic()
        if now >= self.next_positions:
            self.next_positions = now + POSITIONS_EVERY_S
            if self.moved:
                events.append(
                    {
                        "kind": "artisan.positions",
                        "artisans": [
                            [aid, a.lat, a.lon]
                            for aid in self.moved
                            if (a := self.artisans.get(aid)) is not None
                        ],
                    }
                )
                self.moved = set()
        if now >= self.next_cells:
            self.next_cells = now + CELLS_EVERY_S
            events.append({"kind": "cells", "cells": self.cells()})
        self._broadcast(events)

    async def run(self) -> None:
        backoff = TICK_S
        while True:
            if not self.subscribers:
                self._clear()
                self.wake.clear()
                await self.wake.wait()
                continue
            try:
                await self.tick()
                backoff = TICK_S
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("ops feed: %s; retrying in %.2fs", exc, backoff)
                backoff = min(backoff * 2, 2.0)
            await asyncio.sleep(backoff)


async def ops_ctx(app: web.Application) -> AsyncIterator[None]:
    hub = app[gateway_keys.OPS_HUB]
    task = asyncio.create_task(hub.run(), name="gateway-ops-feed")
    yield
    hub.subscribers.clear()
    await stop_tasks(task)
