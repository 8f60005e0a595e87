"""`zendo create-admin` and `zendo seed`.

Seeding writes users with COPY (asyncpg `copy_records_to_table`): 20,000 users
take a few seconds. Every seeded user shares one password and one bcrypt hash;
emails carry a per-run prefix so runs never collide. Seeded access tokens have
the normal lifetime (15 min); a load test running longer logs in again
(`POST /auth/login` with the seeded email and password) to renew them.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import secrets
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import orjson

from core.domain import EARTH_RADIUS_KM, LEVELS, SPECIALTIES
from core.settings import Settings
from core.tokens import issue_access_token
from dispatch.auth import passwords, repo, schemas

SEED_EMAIL_DOMAIN = "seed.zendo.test"
_LEVEL_WEIGHTS = (0.6, 0.3, 0.1)  # STANDARD, PRO_PLUS, ELITE


def _err(message: str) -> None:
    print(f"zendo: {message}", file=sys.stderr)


async def create_admin(settings: Settings, email: str, password: str) -> int:
    """Create an ADMIN, or reset an existing admin's password. Returns an exit code."""
    problems = [e for e in (schemas.email_error(email), schemas.password_error(password)) if e]
    if problems:
        for problem in problems:
            _err(f"{problem.field} {problem.message}")
        return 2
    email = schemas.normalise_email(email)
    password_hash = await passwords.hash_password(password, settings.bcrypt_rounds)
    conn = await asyncpg.connect(settings.database_url)
    try:
        async with conn.transaction():
            existing = await conn.fetchrow(
                "SELECT id, role FROM users WHERE email = $1 FOR UPDATE", email
            )
            if existing is None:
                user_id = await repo.insert_user(
                    conn, email=email, password_hash=password_hash, role="ADMIN", phone_number=None
                )
                await conn.execute("UPDATE users SET is_verified = true WHERE id = $1", user_id)
                print(f"admin created: {user_id}")
                return 0
            if existing["role"] != "ADMIN":
                _err(f"{email} is a {existing['role']} account; refusing to change its role")
                return 1
            await conn.execute(
                "UPDATE users SET password_hash = $2 WHERE id = $1", existing["id"], password_hash
            )
            # A new password ends every session opened with the old one.
            await repo.revoke_user_families(conn, user_id=existing["id"], reason="ADMIN")
            print(f"admin password reset: {existing['id']}")
            return 0
    finally:
        await conn.close()


def random_point_in_disc(
    rng: random.Random, lat: float, lon: float, radius_km: float
) -> tuple[float, float]:
    """A point uniform over the spherical cap of `radius_km` around (lat, lon)."""
    max_angle = radius_km / EARTH_RADIUS_KM
    # Uniform area on a sphere: cos(angle) is uniform between cos(max_angle) and 1.
    angle = math.acos(1 - rng.random() * (1 - math.cos(max_angle)))
    bearing = rng.random() * 2 * math.pi
    phi1, lam1 = math.radians(lat), math.radians(lon)
    phi2 = math.asin(
        math.sin(phi1) * math.cos(angle) + math.cos(phi1) * math.sin(angle) * math.cos(bearing)
    )
    lam2 = lam1 + math.atan2(
        math.sin(bearing) * math.sin(angle) * math.cos(phi1),
        math.cos(angle) - math.sin(phi1) * math.sin(phi2),
    )
    lon2 = (math.degrees(lam2) + 540.0) % 360.0 - 180.0
    return math.degrees(phi2), lon2


def _seed_args_error(
    artisans: int, clients: int, center: tuple[float, float], radius_km: float
) -> str | None:
    if artisans < 0 or clients < 0:
        return "--artisans and --clients must be >= 0"
    if not (-90 <= center[0] <= 90 and -180 <= center[1] <= 180):
        return "--center must be a valid LAT,LON"
    if not (0 < radius_km <= 2000) or not math.isfinite(radius_km):
        return "--radius-km must be in (0, 2000]"
    return None


async def seed(
    settings: Settings,
    *,
    artisans: int,
    clients: int,
    out: Path,
    center: tuple[float, float],
    radius_km: float,
) -> int:
    """Bulk-create VERIFIED artisans around `center` and clients; write them as JSON lines.

    Each user gets a login session (a refresh family) and an access token of it, as a
    login would give: the server checks that session on every request, as for any app."""
    problem = _seed_args_error(artisans, clients, center, radius_km)
    if problem:
        _err(problem)
        return 2
    started = time.perf_counter()
    rng = random.Random()
    run = f"{int(time.time()):x}{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(12)
    password_hash = await passwords.hash_password(password, settings.bcrypt_rounds)

    users: list[tuple[uuid.UUID, str, str, str, bool]] = []
    families: list[tuple[uuid.UUID, uuid.UUID]] = []  # (session id, user id)
    artisan_rows: list[tuple[uuid.UUID, str, str, float, float, float]] = []
    lines: list[dict[str, object]] = []
    for i in range(artisans + clients):
        is_artisan = i < artisans
        role = "ARTISAN" if is_artisan else "CLIENT"
        user_id = uuid.uuid4()
        email = f"{role.lower()}{i}.{run}@{SEED_EMAIL_DOMAIN}"
        users.append((user_id, email, password_hash, role, True))
        session_id = uuid.uuid4()
        families.append((session_id, user_id))
        specialty, lat, lon = None, None, None
        if is_artisan:
            specialty = rng.choice(SPECIALTIES)
            level = rng.choices(LEVELS, weights=_LEVEL_WEIGHTS)[0]
            rating = round(rng.uniform(3.0, 5.0), 2)
            lat, lon = random_point_in_disc(rng, center[0], center[1], radius_km)
            artisan_rows.append((user_id, specialty, level, rating, lat, lon))
        lines.append(
            {
                "user_id": str(user_id),
                "email": email,
                "password": password,
                "role": role,
                "specialty": specialty,
                "lat": lat,
                "lon": lon,
                "session_id": str(session_id),
            }
        )

    conn = await asyncpg.connect(settings.database_url)
    try:
        async with conn.transaction():
            await _copy_users(conn, users, artisan_rows, families)
        # A bulk load outruns autovacuum's analyze by a minute or more, and until then
        # the planner guesses at empty tables: the hot statements got plans several
        # times slower on a fresh database.
        await conn.execute("ANALYZE users, artisans")
    except asyncpg.UniqueViolationError:
        _err("seed emails collided with existing users; run it again")
        return 1
    finally:
        await conn.close()

    await asyncio.to_thread(_write_lines, settings, lines, out)
    print(
        f"seeded {artisans} artisans and {clients} clients (run {run}) "
        f"in {time.perf_counter() - started:.2f} s -> {out}"
    )
    return 0


async def _copy_users(
    conn: asyncpg.Connection,
    users: list[tuple[uuid.UUID, str, str, str, bool]],
    artisan_rows: list[tuple[uuid.UUID, str, str, float, float, float]],
    families: list[tuple[uuid.UUID, uuid.UUID]],
) -> None:
    await conn.copy_records_to_table(
        "users",
        records=users,
        columns=["id", "email", "password_hash", "role", "is_verified"],
    )
    await conn.copy_records_to_table(
        "refresh_token_families", records=families, columns=["id", "user_id"]
    )
    if not artisan_rows:
        return
    # COPY cannot encode GEOGRAPHY in binary, so positions go through a temp table.
    await conn.execute(
        """CREATE TEMP TABLE seed_artisans (
             user_id uuid, specialty text, level text, rating numeric, lat float8, lon float8
           ) ON COMMIT DROP"""
    )
    await conn.copy_records_to_table(
        "seed_artisans",
        records=artisan_rows,
        columns=["user_id", "specialty", "level", "rating", "lat", "lon"],
    )
    await conn.execute(
        """INSERT INTO artisans (user_id, status, current_status, level, specialty, rating,
                                 location, location_updated_at)
           SELECT user_id, 'VERIFIED', 'OFFLINE', level, specialty, rating,
                  ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography, now()
           FROM seed_artisans"""
    )


def _write_lines(settings: Settings, lines: list[dict[str, object]], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    # The file holds a password and live tokens: readable by its owner only.
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        for line in lines:
            line["access_token"] = issue_access_token(
                settings.jwt_secret,
                user_id=uuid.UUID(str(line["user_id"])),
                role=str(line["role"]),
                ttl_s=settings.access_token_ttl_s,
                session_id=uuid.UUID(str(line["session_id"])),
            )
            fh.write(orjson.dumps(line))
            fh.write(b"\n")
