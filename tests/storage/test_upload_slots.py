"""Upload slots (issue 18): only uploaded documents count against the artisan's cap,
open slots are bounded apart, and abandoned ones expire (with what was sent to them)."""

from __future__ import annotations

import aiohttp
import asyncpg

from core.settings import Settings
from dispatch import appkeys as dispatch_keys
from dispatch.artisans.service import (
    MAX_DOCUMENTS_PER_ARTISAN,
    MAX_PENDING_UPLOADS,
    UPLOAD_SLOT_TTL_S,
)
from tests.helpers import PDF, StartApp, send_upload
from tests.storage.test_local_backend import _artisan

_DECLARE = {"kind": "ID_CARD", "content_type": "application/pdf", "size_bytes": len(PDF)}


async def _age_slots(db: asyncpg.Connection, artisan_id: object) -> None:
    """Make the artisan's open slots older than their lifetime."""
    await db.execute(
        "UPDATE artisan_documents SET created_at = now() - make_interval(secs => $2)"
        " WHERE artisan_id = $1 AND status = 'PENDING_UPLOAD'",
        artisan_id,
        UPLOAD_SLOT_TTL_S + 1,
    )


async def test_abandoned_slots_expire_and_do_not_block(
    start_app: StartApp, settings: Settings, db: asyncpg.Connection, http: aiohttp.ClientSession
) -> None:
    client = await start_app(settings)
    storage = client.app[dispatch_keys.STORAGE]
    uid, auth = await _artisan(db, settings)
    slots = []
    for _ in range(MAX_PENDING_UPLOADS):
        resp = await client.post("/artisan/documents", json=_DECLARE, headers=auth)
        assert resp.status == 201
        slots.append(await resp.json())
    # One slot got its file but was never completed.
    status, _ = await send_upload(http, slots[0]["upload"], PDF, "application/pdf")
    assert status == 204
    sent_key = f"documents/{uid}/{slots[0]['document_id']}"
    assert await storage.size(sent_key) == len(PDF)
    resp = await client.post("/artisan/documents", json=_DECLARE, headers=auth)
    assert resp.status == 409
    assert (await resp.json())["code"] == "too_many_pending_uploads"
    # Abandoned: once their lifetime is over they no longer count, and are deleted.
    await _age_slots(db, uid)
    resp = await client.post(f"/artisan/documents/{slots[1]['document_id']}/complete", headers=auth)
    assert resp.status == 404 and (await resp.json())["code"] == "upload_expired"
    resp = await client.post("/artisan/documents", json=_DECLARE, headers=auth)
    assert resp.status == 201
    assert (
        await db.fetchval("SELECT count(*) FROM artisan_documents WHERE artisan_id = $1", uid) == 1
    )
    assert await storage.size(sent_key) is None


async def test_only_uploaded_documents_count_against_the_cap(
    start_app: StartApp, settings: Settings, db: asyncpg.Connection
) -> None:
    client = await start_app(settings)
    uid, auth = await _artisan(db, settings)
    await db.execute(
        """INSERT INTO artisan_documents
             (artisan_id, kind, content_type, size_bytes, storage_key, status, uploaded_at)
           SELECT $1, 'ID_CARD', 'application/pdf', 100, 'documents/x/' || g, 'UPLOADED', now()
           FROM generate_series(1, $2) g""",
        uid,
        MAX_DOCUMENTS_PER_ARTISAN - 1,
    )
    for _ in range(2):  # slots opened but not completed do not count
        resp = await client.post("/artisan/documents", json=_DECLARE, headers=auth)
        assert resp.status == 201
    await db.execute(
        "UPDATE artisan_documents SET status = 'UPLOADED' WHERE artisan_id = $1"
        " AND status = 'PENDING_UPLOAD' AND id = (SELECT id FROM artisan_documents"
        " WHERE artisan_id = $1 AND status = 'PENDING_UPLOAD' LIMIT 1)",
        uid,
    )
    resp = await client.post("/artisan/documents", json=_DECLARE, headers=auth)
    assert resp.status == 409
    assert (await resp.json())["code"] == "too_many_documents"
