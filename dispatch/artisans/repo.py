"""SQL of the artisans context. Functions take a connection; the caller owns the
transaction."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

ARTISAN_COLUMNS = """
    a.user_id, a.status, a.current_status, a.level, a.specialty,
    a.rating::float8 AS rating, ST_Y(a.location::geometry) AS lat,
    ST_X(a.location::geometry) AS lon, a.payouts_enabled, a.stripe_account_id,
    a.rejection_reason, u.email, u.phone_number
"""
DOCUMENT_COLUMNS = """
    id, artisan_id, kind, content_type, size_bytes, storage_key, status, review_reason,
    created_at, uploaded_at, reviewed_at
"""


def artisan_json(row: asyncpg.Record) -> dict[str, Any]:
    """The contract's artisan object."""
    location = None if row["lat"] is None else {"lat": row["lat"], "lon": row["lon"]}
    return {
        "user_id": str(row["user_id"]),
        "status": row["status"],
        "current_status": row["current_status"],
        "level": row["level"],
        "specialty": row["specialty"],
        "rating": row["rating"],
        "location": location,
        "payouts_enabled": row["payouts_enabled"],
    }


def document_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "document_id": str(row["id"]),
        "kind": row["kind"],
        "status": row["status"],
        "size_bytes": row["size_bytes"],
        "content_type": row["content_type"],
        "review_reason": row["review_reason"],
        "created_at": row["created_at"],
        "uploaded_at": row["uploaded_at"],
    }


async def fetch_artisan(
    conn: asyncpg.Connection, *, user_id: uuid.UUID, for_update: bool = False
) -> asyncpg.Record | None:
    lock = " FOR UPDATE OF a" if for_update else ""
    return await conn.fetchrow(
        f"SELECT {ARTISAN_COLUMNS} FROM artisans a JOIN users u ON u.id = a.user_id "
        f"WHERE a.user_id = $1{lock}",
        user_id,
    )


async def update_specialty(conn: asyncpg.Connection, *, user_id: uuid.UUID, specialty: str) -> None:
    """A new trade needs a new review: a VERIFIED artisan goes back to PENDING (and so
    OFFLINE: only VERIFIED artisans are ONLINE)."""
    await conn.execute(
        """UPDATE artisans SET specialty = $2,
               status = CASE WHEN status = 'VERIFIED' THEN 'PENDING' ELSE status END,
               current_status = CASE WHEN status = 'VERIFIED' THEN 'OFFLINE'
                                     ELSE current_status END
           WHERE user_id = $1""",
        user_id,
        specialty,
    )


async def update_phone(
    conn: asyncpg.Connection, *, user_id: uuid.UUID, phone_number: str | None
) -> None:
    await conn.execute("UPDATE users SET phone_number = $2 WHERE id = $1", user_id, phone_number)


async def count_documents(conn: asyncpg.Connection, *, artisan_id: uuid.UUID) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM artisan_documents WHERE artisan_id = $1", artisan_id
    )
    return count


async def insert_document(
    conn: asyncpg.Connection,
    *,
    document_id: uuid.UUID,
    artisan_id: uuid.UUID,
    kind: str,
    content_type: str,
    size_bytes: int,
    storage_key: str,
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        f"""INSERT INTO artisan_documents
              (id, artisan_id, kind, content_type, size_bytes, storage_key)
            VALUES ($1, $2, $3, $4, $5, $6) RETURNING {DOCUMENT_COLUMNS}""",
        document_id,
        artisan_id,
        kind,
        content_type,
        size_bytes,
        storage_key,
    )
    return row


async def fetch_document(
    conn: asyncpg.Connection,
    *,
    document_id: uuid.UUID,
    artisan_id: uuid.UUID | None = None,
    for_update: bool = False,
) -> asyncpg.Record | None:
    """The document; with `artisan_id`, only if it is theirs."""
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(
        f"SELECT {DOCUMENT_COLUMNS} FROM artisan_documents "
        f"WHERE id = $1 AND ($2::uuid IS NULL OR artisan_id = $2){lock}",
        document_id,
        artisan_id,
    )


async def mark_document_uploaded(
    conn: asyncpg.Connection, *, document_id: uuid.UUID, size_bytes: int, storage_key: str
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        f"""UPDATE artisan_documents
               SET status = 'UPLOADED', size_bytes = $2, storage_key = $3, uploaded_at = now()
             WHERE id = $1 RETURNING {DOCUMENT_COLUMNS}""",
        document_id,
        size_bytes,
        storage_key,
    )
    return row


async def list_documents(
    conn: asyncpg.Connection, *, artisan_ids: list[uuid.UUID], uploaded_only: bool = False
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT {DOCUMENT_COLUMNS} FROM artisan_documents
             WHERE artisan_id = ANY($1::uuid[])
               AND (NOT $2 OR status <> 'PENDING_UPLOAD')
             ORDER BY artisan_id, created_at, id""",
        artisan_ids,
        uploaded_only,
    )
    return rows
