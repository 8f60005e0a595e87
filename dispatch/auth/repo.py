"""SQL of the auth context. Functions take a connection; the caller owns the transaction.

`fetch_user_view` / `fetch_artisan_view` are the public serialisation of a user
and an artisan profile (CONTRACT §2, §3), reused by the artisans context.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

_USER_VIEW_SQL = """
SELECT u.id, u.email, u.phone_number, u.role, u.is_verified, u.created_at,
       a.user_id AS artisan_user_id, a.status, a.current_status, a.level, a.specialty,
       a.rating, a.payouts_enabled,
       ST_Y(a.location::geometry) AS lat, ST_X(a.location::geometry) AS lon
FROM users u LEFT JOIN artisans a ON a.user_id = u.id
WHERE u.id = $1
"""

_ARTISAN_VIEW_SQL = """
SELECT a.user_id AS artisan_user_id, a.status, a.current_status, a.level, a.specialty,
       a.rating, a.payouts_enabled,
       ST_Y(a.location::geometry) AS lat, ST_X(a.location::geometry) AS lon
FROM artisans a WHERE a.user_id = $1
"""


def artisan_view(row: asyncpg.Record) -> dict[str, Any]:
    """The contract's artisan object from a row with the `_ARTISAN_VIEW_SQL` columns."""
    location = None if row["lat"] is None else {"lat": row["lat"], "lon": row["lon"]}
    return {
        "user_id": str(row["artisan_user_id"]),
        "status": row["status"],
        "current_status": row["current_status"],
        "level": row["level"],
        "specialty": row["specialty"],
        "rating": float(row["rating"]),
        "location": location,
        "payouts_enabled": row["payouts_enabled"],
    }


def user_view(row: asyncpg.Record) -> dict[str, Any]:
    """The contract's user object; `artisan` is the profile for artisans, else null."""
    return {
        "id": str(row["id"]),
        "email": row["email"],
        "phone_number": row["phone_number"],
        "role": row["role"],
        "is_verified": row["is_verified"],
        "created_at": row["created_at"],
        "artisan": artisan_view(row) if row["artisan_user_id"] is not None else None,
    }


async def fetch_user_view(conn: asyncpg.Connection, *, user_id: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(_USER_VIEW_SQL, user_id)
    return None if row is None else user_view(row)


async def fetch_artisan_view(
    conn: asyncpg.Connection, *, user_id: uuid.UUID
) -> dict[str, Any] | None:
    row = await conn.fetchrow(_ARTISAN_VIEW_SQL, user_id)
    return None if row is None else artisan_view(row)


async def insert_user(
    conn: asyncpg.Connection,
    *,
    email: str,
    password_hash: str,
    role: str,
    phone_number: str | None,
) -> uuid.UUID:
    """Raises asyncpg.UniqueViolationError on a taken email (the caller maps it)."""
    user_id: uuid.UUID = await conn.fetchval(
        """INSERT INTO users (email, password_hash, role, phone_number)
           VALUES ($1, $2, $3, $4) RETURNING id""",
        email,
        password_hash,
        role,
        phone_number,
    )
    return user_id


async def insert_artisan(conn: asyncpg.Connection, *, user_id: uuid.UUID, specialty: str) -> None:
    await conn.execute(
        "INSERT INTO artisans (user_id, specialty) VALUES ($1, $2)", user_id, specialty
    )


async def find_credentials(conn: asyncpg.Connection, *, email: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT id, role, password_hash FROM users WHERE email = $1", email)


async def create_family(conn: asyncpg.Connection, *, user_id: uuid.UUID) -> uuid.UUID:
    family_id: uuid.UUID = await conn.fetchval(
        "INSERT INTO refresh_token_families (user_id) VALUES ($1) RETURNING id", user_id
    )
    return family_id


async def insert_refresh_token(
    conn: asyncpg.Connection,
    *,
    token_hash: bytes,
    family_id: uuid.UUID,
    user_id: uuid.UUID,
    ttl_s: int,
) -> int:
    """A new token of the family; it expires `ttl_s` after the family began (absolute: a
    rotation never extends the session). Returns its remaining lifetime in seconds."""
    remaining: float = await conn.fetchval(
        """INSERT INTO refresh_tokens (token_hash, family_id, user_id, issued_at, expires_at)
           SELECT $1, f.id, $3, now(), f.created_at + make_interval(secs => $4)
           FROM refresh_token_families f WHERE f.id = $2
           RETURNING extract(epoch FROM expires_at - issued_at)::float8""",
        token_hash,
        family_id,
        user_id,
        float(ttl_s),
    )
    return int(remaining)


async def consume_refresh_token(
    conn: asyncpg.Connection, *, token_hash: bytes, ttl_s: int
) -> asyncpg.Record | None:
    """Mark a live token used, atomically: of two concurrent callers exactly one gets a row.

    The row lock taken by UPDATE makes the second caller wait, then re-check
    `used_at IS NULL` against the committed value and match nothing.
    """
    return await conn.fetchrow(
        """UPDATE refresh_tokens t SET used_at = now()
           FROM refresh_token_families f, users u
           WHERE t.token_hash = $1 AND t.used_at IS NULL AND t.expires_at > now()
             AND f.id = t.family_id AND f.revoked_at IS NULL AND u.id = t.user_id
             AND f.created_at + make_interval(secs => $2) > now()
           RETURNING t.family_id, t.user_id, u.role""",
        token_hash,
        float(ttl_s),
    )


async def find_refresh_token(
    conn: asyncpg.Connection, *, token_hash: bytes, grace_s: float = 0.0
) -> asyncpg.Record | None:
    """The token's family and state; `just_used`: it was rotated less than `grace_s` ago."""
    return await conn.fetchrow(
        """SELECT t.family_id, t.user_id, t.used_at, t.expires_at, f.revoked_at,
                  t.used_at > now() - make_interval(secs => $2) AS just_used
           FROM refresh_tokens t JOIN refresh_token_families f ON f.id = t.family_id
           WHERE t.token_hash = $1""",
        token_hash,
        float(grace_s),
    )


async def revoke_family(conn: asyncpg.Connection, *, family_id: uuid.UUID, reason: str) -> None:
    await conn.execute(
        """UPDATE refresh_token_families SET revoked_at = now(), revoked_reason = $2
           WHERE id = $1 AND revoked_at IS NULL""",
        family_id,
        reason,
    )


async def revoke_user_families(
    conn: asyncpg.Connection, *, user_id: uuid.UUID, reason: str
) -> None:
    await conn.execute(
        """UPDATE refresh_token_families SET revoked_at = now(), revoked_reason = $2
           WHERE user_id = $1 AND revoked_at IS NULL""",
        user_id,
        reason,
    )
