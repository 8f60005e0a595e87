"""Artisan profile and documents (CONTRACT §3)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import msgspec
from aiohttp import web

from core import appkeys
from core.db import transaction
from core.effects import ProfileChanged
from core.errors import Conflict, NotFound
from core.outbox import Outbox, commit
from dispatch import appkeys as dispatch_keys
from dispatch.artisans import repo
from dispatch.artisans.schemas import DOCUMENT_CONTENT_TYPES, NewDocument, ProfilePatch
from dispatch.storage.base import check_uploaded_object, validate_declared

MAX_DOCUMENTS_PER_ARTISAN = 30


async def _artisan_or_404(
    conn: asyncpg.Connection, user_id: uuid.UUID, *, for_update: bool = False
) -> asyncpg.Record:
    row = await repo.fetch_artisan(conn, user_id=user_id, for_update=for_update)
    if row is None:
        raise NotFound("No artisan profile for this user")
    return row


def _profile_json(row: asyncpg.Record) -> dict[str, Any]:
    return {**repo.artisan_json(row), "phone_number": row["phone_number"]}


async def get_profile(app: web.Application, user_id: uuid.UUID) -> dict[str, Any]:
    async with app[appkeys.PG_POOL].acquire() as conn:
        return _profile_json(await _artisan_or_404(conn, user_id))


async def patch_profile(
    app: web.Application, user_id: uuid.UUID, patch: ProfilePatch
) -> dict[str, Any]:
    async def work(conn: asyncpg.Connection, outbox: Outbox) -> asyncpg.Record:
        row = await _artisan_or_404(conn, user_id, for_update=True)
        if patch.specialty is not msgspec.UNSET and patch.specialty != row["specialty"]:
            # A job in progress was matched on the old specialty.
            if row["current_status"] == "BUSY":
                raise Conflict("The specialty cannot change during a job", code="artisan_busy")
            await repo.update_specialty(conn, user_id=user_id, specialty=patch.specialty)
            # Verified for one trade is not verified for another: back to PENDING review.
            was_verified = row["status"] == "VERIFIED"
            outbox.live.append(
                ProfileChanged(
                    user_id, specialty=patch.specialty, verified=False if was_verified else None
                )
            )
        if patch.phone_number is not msgspec.UNSET:
            await repo.update_phone(conn, user_id=user_id, phone_number=patch.phone_number)
        return await _artisan_or_404(conn, user_id)

    row, _ = await commit(app, work)
    return _profile_json(row)


async def create_document(
    app: web.Application, artisan_id: uuid.UUID, body: NewDocument
) -> dict[str, Any]:
    validate_declared(body.content_type, body.size_bytes, DOCUMENT_CONTENT_TYPES)
    document_id = uuid.uuid4()
    # Keys are generated here, never taken from the client.
    key = f"documents/{artisan_id}/{document_id}"
    async with transaction(app[appkeys.PG_POOL]) as conn:
        await _artisan_or_404(conn, artisan_id, for_update=True)
        if await repo.count_documents(conn, artisan_id=artisan_id) >= MAX_DOCUMENTS_PER_ARTISAN:
            raise Conflict("Too many documents for this artisan", code="too_many_documents")
        await repo.insert_document(
            conn,
            document_id=document_id,
            artisan_id=artisan_id,
            kind=body.kind,
            content_type=body.content_type,
            size_bytes=body.size_bytes,
            storage_key=key,
        )
    upload = await app[dispatch_keys.STORAGE].presign_upload(
        key, content_type=body.content_type, max_bytes=body.size_bytes
    )
    return {"document_id": document_id, "upload": upload.to_json()}


async def complete_document(
    app: web.Application, artisan_id: uuid.UUID, document_id: uuid.UUID
) -> dict[str, Any]:
    pool = app[appkeys.PG_POOL]
    async with pool.acquire() as conn:
        row = await repo.fetch_document(conn, document_id=document_id, artisan_id=artisan_id)
    if row is None:
        raise NotFound("No such document")
    if row["status"] != "PENDING_UPLOAD":
        return repo.document_json(row)  # already completed: idempotent
    stored = await check_uploaded_object(
        app[dispatch_keys.STORAGE],
        row["storage_key"],
        content_type=row["content_type"],
        declared_size=row["size_bytes"],
    )
    async with transaction(pool) as conn:
        current = await repo.fetch_document(conn, document_id=document_id, for_update=True)
        if current is None:
            raise NotFound("No such document")
        if current["status"] != "PENDING_UPLOAD":
            return repo.document_json(current)
        return repo.document_json(
            await repo.mark_document_uploaded(
                conn, document_id=document_id, size_bytes=stored.size, storage_key=stored.key
            )
        )


async def list_documents(app: web.Application, artisan_id: uuid.UUID) -> list[dict[str, Any]]:
    async with app[appkeys.PG_POOL].acquire() as conn:
        await _artisan_or_404(conn, artisan_id)
        rows = await repo.list_documents(conn, artisan_ids=[artisan_id])
    return [repo.document_json(r) for r in rows]
