"""Before/after photos of an intervention, uploaded by its assigned artisan through
the same storage service as documents."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from aiohttp import web

from core import appkeys
from core.db import transaction
from core.errors import Conflict, NotFound
from core.principal import Principal
from dispatch import appkeys as dispatch_keys
from dispatch.artisans.schemas import PHOTO_CONTENT_TYPES, NewPhoto
from dispatch.storage.base import check_uploaded_object, validate_declared

MAX_PHOTOS_PER_INTERVENTION = 20
_PHOTO_STATUSES = ("ASSIGNED", "EN_ROUTE", "ARRIVED", "IN_PROGRESS", "COMPLETED")
_COLUMNS = "id, intervention_id, artisan_id, phase, content_type, size_bytes, storage_key, status, created_at, uploaded_at"


def photo_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "photo_id": str(row["id"]),
        "intervention_id": str(row["intervention_id"]),
        "phase": row["phase"],
        "status": row["status"],
        "content_type": row["content_type"],
        "size_bytes": row["size_bytes"],
        "created_at": row["created_at"],
        "uploaded_at": row["uploaded_at"],
    }


async def _assigned_intervention(
    conn: asyncpg.Connection, intervention_id: uuid.UUID, artisan_id: uuid.UUID
) -> asyncpg.Record:
    """The intervention, locked, if this artisan is assigned to it; 404 for anyone else."""
    row = await conn.fetchrow(
        "SELECT id, status, artisan_id FROM interventions WHERE id = $1 AND artisan_id = $2 FOR UPDATE",
        intervention_id,
        artisan_id,
    )
    if row is None:
        raise NotFound("No such intervention")
    return row


async def create_photo(
    app: web.Application,
    artisan_id: uuid.UUID,
    intervention_id: uuid.UUID,
    body: NewPhoto,
) -> dict[str, Any]:
    pool, storage = app[appkeys.PG_POOL], app[dispatch_keys.STORAGE]
    validate_declared(body.content_type, body.size_bytes, PHOTO_CONTENT_TYPES)
    photo_id = uuid.uuid4()
    key = f"photos/{intervention_id}/{photo_id}"
    async with transaction(pool) as conn:
        job = await _assigned_intervention(conn, intervention_id, artisan_id)
        if job["status"] not in _PHOTO_STATUSES:
            raise Conflict(
                f"No photos on a {job['status']} intervention", code="intervention_not_active"
            )
        count = await conn.fetchval(
            "SELECT count(*) FROM intervention_photos WHERE intervention_id = $1", intervention_id
        )
        if count >= MAX_PHOTOS_PER_INTERVENTION:
            raise Conflict("Too many photos for this intervention", code="too_many_photos")
        await conn.execute(
            """INSERT INTO intervention_photos
                 (id, intervention_id, artisan_id, phase, content_type, size_bytes, storage_key)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            photo_id,
            intervention_id,
            artisan_id,
            body.phase,
            body.content_type,
            body.size_bytes,
            key,
        )
    upload = await storage.presign_upload(
        key, content_type=body.content_type, max_bytes=body.size_bytes
    )
    return {"photo_id": photo_id, "upload": upload.to_json()}


async def complete_photo(
    app: web.Application,
    artisan_id: uuid.UUID,
    intervention_id: uuid.UUID,
    photo_id: uuid.UUID,
) -> dict[str, Any]:
    pool, storage = app[appkeys.PG_POOL], app[dispatch_keys.STORAGE]
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            f"""SELECT {_COLUMNS} FROM intervention_photos
                 WHERE id = $1 AND intervention_id = $2 AND artisan_id = $3""",
            photo_id,
            intervention_id,
            artisan_id,
        )
    if row is None:
        raise NotFound("No such photo")
    if row["status"] == "UPLOADED":
        return photo_json(row)
    stored = await check_uploaded_object(
        storage,
        row["storage_key"],
        content_type=row["content_type"],
        declared_size=row["size_bytes"],
    )
    async with pool.acquire() as conn:
        updated = await conn.fetchrow(
            f"""UPDATE intervention_photos SET status = 'UPLOADED', size_bytes = $2,
                       storage_key = $3, uploaded_at = COALESCE(uploaded_at, now())
                 WHERE id = $1 RETURNING {_COLUMNS}""",
            photo_id,
            stored.size,
            stored.key,
        )
    return photo_json(updated)


async def list_photos(
    app: web.Application, principal: Principal, intervention_id: uuid.UUID
) -> list[dict[str, Any]]:
    """Uploaded photos with short-lived links, for the job's client, its artisan or an admin."""
    pool, storage = app[appkeys.PG_POOL], app[dispatch_keys.STORAGE]
    async with pool.acquire() as conn:
        job = await conn.fetchrow(
            "SELECT client_id, artisan_id FROM interventions WHERE id = $1", intervention_id
        )
        allowed = job is not None and (
            principal.role == "ADMIN" or principal.user_id in (job["client_id"], job["artisan_id"])
        )
        if not allowed:
            raise NotFound("No such intervention")
        rows = await conn.fetch(
            f"""SELECT {_COLUMNS} FROM intervention_photos
                 WHERE intervention_id = $1 AND status = 'UPLOADED' ORDER BY created_at, id""",
            intervention_id,
        )
    result = []
    for row in rows:
        link = await storage.presign_download(row["storage_key"], content_type=row["content_type"])
        result.append(
            {**photo_json(row), "download_url": link.url, "download_expires_at": link.expires_at}
        )
    return result
