"""The admin audit trail: every admin action, and every admin read of personal data
(an artisan's live position, a ranking of artisans, someone else's interventions,
document links), is one `admin_audit` row. The caller owns the transaction: an action's
row commits with its effect."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg


async def record(
    conn: asyncpg.Connection,
    *,
    admin_id: uuid.UUID,
    action: str,
    target_type: str,
    target_id: uuid.UUID | None,
    data: dict[str, Any],
) -> None:
    await conn.execute(
        """INSERT INTO admin_audit (admin_id, action, target_type, target_id, data)
           VALUES ($1, $2, $3, $4, $5)""",
        admin_id,
        action,
        target_type,
        target_id,
        data,
    )
