"""Admin actions on artisans and their documents. Every action writes an
admin_audit row in the same transaction as its effect."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from aiohttp import web

from core import appkeys, audit
from core.db import transaction
from core.effects import ProfileChanged
from core.errors import Conflict, NotFound
from core.outbox import Outbox, commit
from dispatch import appkeys as dispatch_keys
from dispatch.admin import repo
from dispatch.artisans import repo as artisan_repo
from dispatch.storage.base import Storage


def _admin_artisan_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        **artisan_repo.artisan_json(row),
        "email": row["email"],
        "phone_number": row["phone_number"],
        "rejection_reason": row["rejection_reason"],
    }


async def _documents_with_links(
    storage: Storage, rows: list[asyncpg.Record]
) -> list[dict[str, Any]]:
    result = []
    for row in rows:
        link = await storage.presign_download(row["storage_key"], content_type=row["content_type"])
        doc = artisan_repo.document_json(row)
        result.append(
            {
                **doc,
                "download_url": link.url,
                "download_expires_at": link.expires_at,
            }
        )
    return result


async def list_artisans(
    app: web.Application,
    admin_id: uuid.UUID,
    *,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    async with transaction(app[appkeys.PG_POOL]) as conn:
        rows, total = await repo.list_artisans(conn, status=status, limit=limit, offset=offset)
        ids = [r["user_id"] for r in rows]
        docs = await artisan_repo.list_documents(conn, artisan_ids=ids, uploaded_only=True)
        # Personal data of a whole page: audited. Download links are minted on demand
        # only, one artisan at a time (`artisan_documents`), never for a whole page.
        await audit.record(
            conn,
            admin_id=admin_id,
            action="artisans.list",
            target_type="artisan",
            target_id=None,
            data={
                "status": status,
                "limit": limit,
                "offset": offset,
                "returned": [str(i) for i in ids],
            },
        )
    by_artisan: dict[uuid.UUID, list[asyncpg.Record]] = {}
    for doc in docs:
        by_artisan.setdefault(doc["artisan_id"], []).append(doc)
    items = []
    for row in rows:
        item = _admin_artisan_json(row)
        item["documents"] = [
            artisan_repo.document_json(d) for d in by_artisan.get(row["user_id"], [])
        ]
        items.append(item)
    return items, total


async def artisan_documents(
    app: web.Application, admin_id: uuid.UUID, artisan_id: uuid.UUID
) -> list[dict[str, Any]]:
    async with transaction(app[appkeys.PG_POOL]) as conn:
        if await artisan_repo.fetch_artisan(conn, user_id=artisan_id) is None:
            raise NotFound("No such artisan")
        rows = await artisan_repo.list_documents(conn, artisan_ids=[artisan_id], uploaded_only=True)
        await audit.record(
            conn,
            admin_id=admin_id,
            action="artisan.documents.view",
            target_type="artisan",
            target_id=artisan_id,
            data={"documents": [str(r["id"]) for r in rows]},
        )
    return await _documents_with_links(app[dispatch_keys.STORAGE], rows)


async def verify_artisan(
    app: web.Application, admin_id: uuid.UUID, artisan_id: uuid.UUID
) -> dict[str, Any]:
    """PENDING or REJECTED -> VERIFIED. Verifying a VERIFIED artisan is a no-op (200)."""

    async def work(conn: asyncpg.Connection, outbox: Outbox) -> asyncpg.Record:
        row = await artisan_repo.fetch_artisan(conn, user_id=artisan_id, for_update=True)
        if row is None:
            raise NotFound("No such artisan")
        changed = row["status"] != "VERIFIED"
        if changed:
            await repo.set_verified(conn, artisan_id=artisan_id)
        await audit.record(
            conn,
            admin_id=admin_id,
            action="artisan.verify",
            target_type="artisan",
            target_id=artisan_id,
            data={"from": row["status"], "to": "VERIFIED", "changed": changed},
        )
        if changed:
            outbox.live.append(ProfileChanged(artisan_id, verified=True))
        return await artisan_repo.fetch_artisan(conn, user_id=artisan_id)

    row, _ = await commit(app, work)
    return _admin_artisan_json(row)


async def reject_artisan(
    app: web.Application, admin_id: uuid.UUID, artisan_id: uuid.UUID, reason: str
) -> dict[str, Any]:
    """PENDING or VERIFIED -> REJECTED (an ONLINE artisan goes OFFLINE). 409 while BUSY:
    the job in progress has to finish or be cancelled first. Re-rejecting updates the reason."""

    async def work(conn: asyncpg.Connection, outbox: Outbox) -> asyncpg.Record:
        row = await artisan_repo.fetch_artisan(conn, user_id=artisan_id, for_update=True)
        if row is None:
            raise NotFound("No such artisan")
        if row["current_status"] == "BUSY":
            raise Conflict("The artisan is on a job; reject after it ends", code="artisan_busy")
        await repo.set_rejected(conn, artisan_id=artisan_id, reason=reason)
        await audit.record(
            conn,
            admin_id=admin_id,
            action="artisan.reject",
            target_type="artisan",
            target_id=artisan_id,
            data={
                "from": row["status"],
                "to": "REJECTED",
                "reason": reason,
                "was": row["current_status"],
            },
        )
        if row["status"] == "VERIFIED":
            outbox.live.append(ProfileChanged(artisan_id, verified=False))
        return await artisan_repo.fetch_artisan(conn, user_id=artisan_id)

    updated, _ = await commit(app, work)
    return _admin_artisan_json(updated)


async def review_document(
    app: web.Application,
    admin_id: uuid.UUID,
    document_id: uuid.UUID,
    status: str,
    reason: str | None,
) -> dict[str, Any]:
    async with transaction(app[appkeys.PG_POOL]) as conn:
        row = await artisan_repo.fetch_document(conn, document_id=document_id, for_update=True)
        if row is None:
            raise NotFound("No such document")
        if row["status"] == "PENDING_UPLOAD":
            raise Conflict("The document has not been uploaded", code="document_not_uploaded")
        updated = await repo.review_document(
            conn, document_id=document_id, status=status, reason=reason, admin_id=admin_id
        )
        await audit.record(
            conn,
            admin_id=admin_id,
            action="document.review",
            target_type="document",
            target_id=document_id,
            data={
                "artisan_id": str(row["artisan_id"]),
                "from": row["status"],
                "to": status,
                "reason": reason,
            },
        )
    return artisan_repo.document_json(updated)
