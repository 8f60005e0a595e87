"""Test data straight into the real database, independent of the auth routes."""

from __future__ import annotations

import functools
import uuid
from typing import Any

import asyncpg
import bcrypt

from core.settings import Settings
from core.tokens import issue_access_token

DEFAULT_PASSWORD = "correct-horse-battery"


@functools.cache
def _default_hash() -> str:
    return bcrypt.hashpw(DEFAULT_PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()


async def create_user(
    conn: asyncpg.Connection,
    *,
    role: str = "CLIENT",
    email: str | None = None,
    specialty: str = "PLUMBER",
    artisan_status: str = "VERIFIED",
    level: str = "STANDARD",
    rating: float = 4.5,
    lat: float | None = None,
    lon: float | None = None,
) -> uuid.UUID:
    """Insert a user (and, for artisans, their profile); return the user id."""
    email = email or f"{role.lower()}-{uuid.uuid4().hex[:12]}@example.com"
    user_id: uuid.UUID = await conn.fetchval(
        "INSERT INTO users (email, password_hash, role, is_verified) VALUES ($1, $2, $3, true) RETURNING id",
        email,
        _default_hash(),
        role,
    )
    if role == "ARTISAN":
        await conn.execute(
            """INSERT INTO artisans (user_id, status, level, specialty, rating, location)
               VALUES ($1, $2, $3, $4, $5,
                       CASE WHEN $6::float8 IS NULL THEN NULL
                            ELSE ST_SetSRID(ST_MakePoint($7::float8, $6::float8), 4326)::geography END)""",
            user_id,
            artisan_status,
            level,
            specialty,
            rating,
            lat,
            lon,
        )
    return user_id


def token_for(settings: Settings, user_id: uuid.UUID, role: str, ttl_s: int = 900) -> str:
    return issue_access_token(settings.jwt_secret, user_id=user_id, role=role, ttl_s=ttl_s)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def insert_intervention(
    db: Any,
    *,
    client_id: uuid.UUID,
    artisan_id: uuid.UUID | None,
    status: str = "ASSIGNED",
    specialty: str = "PLUMBER",
) -> uuid.UUID:
    """An intervention row as the dispatch lifecycle would leave it (no price yet)."""
    intervention_id: uuid.UUID = await db.fetchval(
        """INSERT INTO interventions (client_id, artisan_id, specialty, location, status, start_code)
           VALUES ($1, $2, $3, ST_SetSRID(ST_MakePoint(2.35, 48.85), 4326)::geography, $4, '1234')
           RETURNING id""",
        client_id,
        artisan_id,
        specialty,
        status,
    )
    return intervention_id
