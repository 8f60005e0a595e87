"""The database and Redis state of a run: TRUNCATE and FLUSH, then seeded artisans and
clients, the same rows in the server's database and in the bare handlers' own."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from redis.asyncio import Redis

from benchmarks.cost.constants import (
    BCRYPT_ROUNDS,
    CENTER,
    FIX_SPECIALTIES,
    JOB_SPECIALTY,
    PASSWORD,
    SECRET,
)
from benchmarks.scratch_db import database_name, truncate, with_database


def bare_dsn(dsn: str) -> str:
    """The bare handlers' database beside the server's: `<name>_bare`. The two run side
    by side, and the real dispatcher must never see the bare handlers' jobs."""
    return with_database(dsn, f"{database_name(dsn)}_bare")


@dataclass
class Seeded:
    fix_artisans: list[dict[str, Any]]
    job_artisans: list[dict[str, Any]]
    clients: list[dict[str, Any]]


async def seed(
    dsns: Sequence[str], redis_url: str, n_fix: int, n_job: int, n_clients: int
) -> Seeded:
    """In each database: TRUNCATE, then the same verified artisans and clients (ids,
    emails, password hash) through `zendo seed`'s COPY path."""
    from core.tokens import issue_access_token
    from dispatch.auth import passwords
    from dispatch.auth.commands import _copy_users, random_point_in_disc

    rng = random.Random(7)
    password_hash = await passwords.hash_password(PASSWORD, BCRYPT_ROUNDS)
    users: list[tuple[uuid.UUID, str, str, str, bool]] = []
    artisan_rows: list[tuple[uuid.UUID, str, str, float, float, float]] = []
    families: list[tuple[uuid.UUID, uuid.UUID]] = []  # a login session each, as real apps
    out: dict[str, list[dict[str, Any]]] = {"fix": [], "job": [], "client": []}
    groups = (("fix", n_fix, 12.0), ("job", n_job, 3.0), ("client", n_clients, 0.0))
    for group, n, radius_km in groups:
        for i in range(n):
            user_id = uuid.uuid4()
            role = "CLIENT" if group == "client" else "ARTISAN"
            email = f"cost-{group}{i}@bench.zendo.test"
            users.append((user_id, email, password_hash, role, True))
            entry: dict[str, Any] = {"id": str(user_id), "email": email}
            if role == "ARTISAN":
                specialty = JOB_SPECIALTY if group == "job" else FIX_SPECIALTIES[i % 5]
                lat, lon = random_point_in_disc(rng, *CENTER, radius_km)
                artisan_rows.append((user_id, specialty, "STANDARD", 4.5, lat, lon))
                entry.update(specialty=specialty, lat=lat, lon=lon)
            session_id = uuid.uuid4()
            families.append((session_id, user_id))
            entry["token"] = issue_access_token(
                SECRET, user_id=user_id, role=role, ttl_s=3600, session_id=session_id
            )
            out[group].append(entry)
    for dsn in dsns:
        conn = await asyncpg.connect(dsn)
        try:
            await truncate(conn)
            async with conn.transaction():
                await _copy_users(conn, users, artisan_rows, families)
            await conn.execute("ANALYZE users, artisans")
        finally:
            await conn.close()
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    await redis.aclose()
    return Seeded(out["fix"], out["job"], out["client"])
