"""Request bodies (msgspec, validated on decode) and the intervention's JSON views."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
import msgspec

from core.errors import FieldError, ValidationFailed
from core.outbox import Outbox

Specialty = Literal["PLUMBER", "ELECTRICIAN", "LOCKSMITH", "HEATING", "GLAZIER", "APPLIANCE_REPAIR"]
Latitude = Annotated[float, msgspec.Meta(ge=-90.0, le=90.0)]
Longitude = Annotated[float, msgspec.Meta(ge=-180.0, le=180.0)]
_IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")


class CreateIntervention(msgspec.Struct, forbid_unknown_fields=True):
    specialty: Specialty
    lat: Latitude
    lon: Longitude
    address: Annotated[str, msgspec.Meta(max_length=500)] | None = None
    description: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


class StatusChange(msgspec.Struct, forbid_unknown_fields=True):
    status: Literal["EN_ROUTE", "ARRIVED", "IN_PROGRESS", "COMPLETED"]
    start_code: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{4}$")] | None = None


class RatingBody(msgspec.Struct, forbid_unknown_fields=True):
    stars: Annotated[int, msgspec.Meta(ge=1, le=5)]
    comment: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


def check_idempotency_key(raw: str | None) -> str | None:
    """Printable ASCII, 1..255 characters (the column's width); absent means no key."""
    if raw is None:
        return None
    if not _IDEMPOTENCY_KEY_RE.match(raw):
        raise ValidationFailed(
            [FieldError("Idempotency-Key", "1 to 255 printable ASCII characters, no spaces")]
        )
    return raw


def iso(value: datetime) -> str:
    """RFC 3339 UTC with a Z, the same text HTTP bodies and WebSocket frames carry."""
    return value.isoformat().replace("+00:00", "Z")


def intervention_json(row: asyncpg.Record, *, for_client: bool) -> dict[str, Any]:
    """The contract's intervention object; `start_code` only in the client's view.

    Plain JSON types only, so the same dict goes into HTTP bodies and WebSocket frames.
    """
    body: dict[str, Any] = {
        "id": str(row["id"]),
        "client_id": str(row["client_id"]),
        "artisan_id": str(row["artisan_id"]) if row["artisan_id"] is not None else None,
        "specialty": row["specialty"],
        "lat": row["lat"],
        "lon": row["lon"],
        "address": row["address"],
        "description": row["description"],
        "status": row["status"],
        "price": (
            {"amount": row["price_amount"], "currency": row["price_currency"]}
            if row["price_amount"] is not None
            else None
        ),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }
    if for_client:
        body["start_code"] = row["start_code"]
    return body


def offer_frame(offer: asyncpg.Record, job: asyncpg.Record) -> dict[str, Any]:
    return {
        "type": "offer",
        "offer_id": str(offer["id"]),
        "intervention": {
            "id": str(job["id"]),
            "specialty": job["specialty"],
            "lat": job["lat"],
            "lon": job["lon"],
            "address": job["address"],
            "description": job["description"],
            "distance_km": round(float(offer["distance_km"]), 3),
        },
        "expires_at": iso(offer["expires_at"]),
    }


def push_status(
    outbox: Outbox, row: asyncpg.Record, *, also_artisan: uuid.UUID | None = None
) -> None:
    """intervention.status to the client, and to the artisan concerned (if any)."""
    outbox.push(
        row["client_id"],
        {"type": "intervention.status", "intervention": intervention_json(row, for_client=True)},
    )
    artisan = also_artisan or row["artisan_id"]
    if artisan is not None:
        outbox.push(
            artisan,
            {
                "type": "intervention.status",
                "intervention": intervention_json(row, for_client=False),
            },
        )
