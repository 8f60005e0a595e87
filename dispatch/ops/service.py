"""The ops console's reads: an intervention's timeline and the KPIs of a time window."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
from aiohttp import web

from core import appkeys
from core.domain import SPECIALTIES
from core.errors import NotFound
from dispatch.ops import repo

# Offer outcomes as the timeline names them (offers.status -> entry kind).
_OFFER_OUTCOMES = {
    "PENDING": None,
    "ACCEPTED": "offer.accepted",
    "DECLINED": "offer.declined",
    "EXPIRED": "offer.expired",
    "TAKEN": "offer.taken",
    "REVOKED": "offer.revoked",
}


# Order of entries written at the same instant (ties after the clamping below).
_RANK = {"created": 0, "offer.sent": 1, "status": 3}


def _status_entry(row: asyncpg.Record) -> dict[str, Any]:
    kind = "created" if row["from_status"] is None else "status"
    return {
        "kind": kind,
        "at": row["at"],
        "from_status": row["from_status"],
        "to_status": row["to_status"],
        "actor_role": row["actor_role"],
        "actor_id": str(row["actor_id"]) if row["actor_id"] is not None else None,
        "data": row["data"],
    }


def _offer_entries(
    row: asyncpg.Record, created_at: datetime | None, assigned: dict[str, datetime]
) -> list[dict[str, Any]]:
    """An offer's sending and its outcome. One statement writes a job with its first
    offers, and an accept with the job's move to ASSIGNED, each row at its own
    clock_timestamp(): the times are clamped so that the creation comes before its
    offers and an accept before the move it caused."""
    artisan_id = str(row["artisan_id"])
    common = {
        "offer_id": str(row["id"]),
        "artisan_id": artisan_id,
        "distance_km": round(float(row["distance_km"]), 3),
        "score": float(row["score"]),
    }
    sent_at = row["created_at"] if created_at is None else max(row["created_at"], created_at)
    entries: list[dict[str, Any]] = [
        {"kind": "offer.sent", "at": sent_at, "expires_at": row["expires_at"], **common}
    ]
    outcome = _OFFER_OUTCOMES.get(row["status"])
    if outcome is not None:
        at = max(row["responded_at"] or row["expires_at"], sent_at)
        if outcome == "offer.accepted" and artisan_id in assigned:
            at = min(at, assigned[artisan_id])
        entries.append({"kind": outcome, "at": at, **common})
    return entries


async def timeline(app: web.Application, intervention_id: uuid.UUID) -> dict[str, Any]:
    """Status changes (from intervention_events) and offers (sent, then their outcome),
    in time order."""
    async with app[appkeys.PG_POOL].acquire() as conn:
        job = await repo.intervention(conn, intervention_id=intervention_id)
        if job is None:
            raise NotFound("No such intervention")
        events = await repo.status_events(conn, intervention_id=intervention_id)
        offers = await repo.offers(conn, intervention_id=intervention_id)
    entries = [_status_entry(e) for e in events]
    created_at = next((e["at"] for e in entries if e["kind"] == "created"), None)
    assigned: dict[str, datetime] = {}
    for e in entries:
        if e["to_status"] == "ASSIGNED" and e["actor_id"] is not None:
            assigned.setdefault(e["actor_id"], e["at"])
    for offer in offers:
        entries.extend(_offer_entries(offer, created_at, assigned))
    entries.sort(key=lambda e: (e["at"], _RANK.get(e["kind"], 2)))
    return {
        "intervention": {
            "id": str(job["id"]),
            "client_id": str(job["client_id"]),
            "artisan_id": str(job["artisan_id"]) if job["artisan_id"] is not None else None,
            "specialty": job["specialty"],
            "status": job["status"],
            "lat": job["lat"],
            "lon": job["lon"],
            "created_at": job["created_at"],
            "updated_at": job["updated_at"],
        },
        "entries": entries,
    }


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def _job_figures(row: asyncpg.Record | None) -> dict[str, Any]:
    if row is None:
        return {
            "jobs_created": 0,
            "jobs_assigned": 0,
            "jobs_unfulfilled": 0,
            "time_to_first_offer_s": {"p50": None, "p90": None},
            "time_to_assign_s": {"p50": None, "p90": None},
            "acceptance_rate": None,
            "offers_answered": 0,
        }
    answered = int(row["offers_answered"])
    return {
        "jobs_created": int(row["created"]),
        "jobs_assigned": int(row["assigned"]),
        "jobs_unfulfilled": int(row["unfulfilled"]),
        "time_to_first_offer_s": {
            "p50": _seconds(row["first_offer_p50"]),
            "p90": _seconds(row["first_offer_p90"]),
        },
        "time_to_assign_s": {
            "p50": _seconds(row["assign_p50"]),
            "p90": _seconds(row["assign_p90"]),
        },
        "acceptance_rate": (round(int(row["offers_accepted"]) / answered, 4) if answered else None),
        "offers_answered": answered,
    }


async def kpis(app: web.Application, window_s: int) -> dict[str, Any]:
    """Jobs created in the last `window_s` seconds (created, assigned, UNFULFILLED, time
    to first offer and to assign, offer acceptance rate: accepted / answered, expiry
    counting as a no) and the artisans ONLINE and BUSY now; in total and by specialty."""
    async with app[appkeys.PG_POOL].acquire() as conn:
        jobs = {r["specialty"]: r for r in await repo.job_kpis(conn, window_s=window_s)}
        artisans = {r["specialty"]: r for r in await repo.artisan_kpis(conn)}

    def figures(specialty: str | None) -> dict[str, Any]:
        fleet = artisans.get(specialty)
        return {
            **_job_figures(jobs.get(specialty)),
            "artisans_online": int(fleet["online"]) if fleet is not None else 0,
            "artisans_busy": int(fleet["busy"]) if fleet is not None else 0,
        }

    return {
        "window_s": window_s,
        "total": figures(None),
        "by_specialty": {s: figures(s) for s in SPECIALTIES},
    }
