"""SQL of the admin context. Functions take a connection; the caller owns the transaction."""

from __future__ import annotations

import uuid

import asyncpg

from dispatch.artisans.repo import ARTISAN_COLUMNS, DOCUMENT_COLUMNS


async def list_artisans(
    conn: asyncpg.Connection, *, status: str | None, limit: int, offset: int
) -> tuple[list[asyncpg.Record], int]:
    rows = await conn.fetch(
        f"""SELECT {ARTISAN_COLUMNS}, u.created_at FROM artisans a JOIN users u ON u.id = a.user_id
             WHERE ($1::text IS NULL OR a.status = $1)
             ORDER BY u.created_at, a.user_id LIMIT $2 OFFSET $3""",
        status,
        limit,
        offset,
    )
    total: int = await conn.fetchval(
        "SELECT count(*) FROM artisans WHERE ($1::text IS NULL OR status = $1)", status
    )
    return rows, total


async def set_verified(conn: asyncpg.Connection, *, artisan_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE artisans SET status = 'VERIFIED', rejection_reason = NULL WHERE user_id = $1",
        artisan_id,
    )


async def set_rejected(conn: asyncpg.Connection, *, artisan_id: uuid.UUID, reason: str) -> None:
    # Going OFFLINE in the same statement keeps artisans_online_needs_verified true.
    await conn.execute(
        """UPDATE artisans
              SET status = 'REJECTED', rejection_reason = $2,
                  current_status = CASE WHEN current_status = 'ONLINE' THEN 'OFFLINE'
                                        ELSE current_status END
            WHERE user_id = $1""",
        artisan_id,
        reason,
    )


async def review_document(
    conn: asyncpg.Connection,
    *,
    document_id: uuid.UUID,
    status: str,
    reason: str | None,
    admin_id: uuid.UUID,
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        f"""UPDATE artisan_documents
               SET status = $2, review_reason = $3, reviewed_by = $4, reviewed_at = now()
             WHERE id = $1 RETURNING {DOCUMENT_COLUMNS}""",
        document_id,
        status,
        reason,
        admin_id,
    )
    return row
