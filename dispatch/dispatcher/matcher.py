"""Candidates for a job: the ArtisanIndex mirror ranks, PostgreSQL has the last word.

The in-memory mirror (CONTRACT §7) answers in microseconds but may lag the
truth by a moment (an artisan who just accepted another job, an unverified
account). Each proposed candidate is therefore checked in the same transaction
that inserts the offers, and the unique indexes on offers settle any race with
another dispatcher.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp import web

from core import appkeys
from core.appkeys import METRICS
from dispatch.interventions.schemas import offer_frame
from dispatch.offers import repo as offers_repo

# Extra candidates fetched per round, since some may turn out busy or engaged.
OVERFETCH = 8
MAX_ROUNDS = 4


class NoIndex(RuntimeError):
    """The artisan index mirror is not available in this process (yet)."""


@dataclass(slots=True)
class Found:
    offers: list[asyncpg.Record] = field(default_factory=list)
    frames: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    # Some eligible candidate is answering another job's offer right now.
    waiting: bool = False


def candidate_columns(candidates: list[Any]) -> dict[str, list[Any]]:
    """The index's ranking as the offer statements' array arguments."""
    return {
        "artisan_ids": [uuid.UUID(c.artisan_id) for c in candidates],
        "distances_km": [float(c.distance_km) for c in candidates],
        "scores": [float(c.score) for c in candidates],
    }


class Matcher:
    def __init__(self, app: web.Application) -> None:
        self._app = app

    def index(self) -> Any:
        index = self._app.get(appkeys.MATCH_INDEX)
        if index is None:
            raise NoIndex("the artisan index is not available")
        return index

    def rank(
        self,
        lat: float,
        lon: float,
        specialty: str,
        *,
        k: int,
        max_km: float,
        exclude: Iterable[str] = (),
    ) -> list[Any]:
        """The index's ranking (best first), timed into zendo_match_seconds."""
        index = self.index()
        started = time.perf_counter()
        candidates = index.query(lat, lon, specialty, k=k, max_km=max_km, exclude=exclude)
        self._app[METRICS].match_seconds.observe(time.perf_counter() - started)
        return list(candidates)

    async def offer(
        self,
        conn: asyncpg.Connection,
        job: asyncpg.Record,
        asked: set[uuid.UUID],
        wanted: int,
        max_km: float,
        order: Callable[[list[Any]], Awaitable[list[Any]]] | None = None,
    ) -> Found:
        """Offer the job to up to `wanted` of the best free candidates not yet asked,
        in the matcher's order or the one `order` (the dispatch policy) gives them."""
        found = Found()
        skip = {str(a) for a in asked}
        timeout_s = self._app[appkeys.SETTINGS].offer_timeout_s
        for _ in range(MAX_ROUNDS):
            k = wanted + OVERFETCH
            candidates = self.rank(
                job["lat"], job["lon"], job["specialty"], k=k, max_km=max_km, exclude=skip
            )
            if not candidates:
                break
            ranked = candidates if order is None else await order(candidates)
            rows = await offers_repo.offer_to_first_free(
                conn,
                intervention_id=job["id"],
                **candidate_columns(ranked),
                wanted=wanted,
                timeout_s=timeout_s,
            )
            free = [r["artisan_id"] for r in rows if r["state"] == "free"]
            chosen = set(free[:wanted])
            inserted = [r for r in rows if r["id"] is not None]
            found.waiting = found.waiting or any(r["state"] == "engaged" for r in rows)
            if len(inserted) < len(chosen):
                found.waiting = True  # lost a race: that artisan just got another offer
            for offer in inserted:
                found.offers.append(offer)
                found.frames[offer["id"]] = offer_frame(offer, job)
            wanted -= len(inserted)
            # Everyone looked at and not chosen-and-inserted is passed over next round;
            # untried free candidates stay in play.
            tried_or_unfit = {r["artisan_id"] for r in rows if r["state"] != "free"} | chosen
            skip |= {str(i) for i in tried_or_unfit}
            if wanted <= 0 or len(candidates) < k:
                break
        return found
