"""`zendo create-admin` and `zendo seed` against the real database."""

from __future__ import annotations

import asyncio
import math
import os
import random
import sys
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestClient

from core.domain import EARTH_RADIUS_KM, LEVELS, SPECIALTIES
from core.settings import Settings
from core.tokens import verify_access_token
from dispatch.auth import commands
from tests.factories import bearer
from tests.helpers import login, register

Client = TestClient[Any, Any]
PARIS = (48.8566, 2.3522)


def _haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


async def test_create_admin_then_login_and_reset(
    client: Client, settings: Settings, db: asyncpg.Connection
) -> None:
    assert await commands.create_admin(settings, "Root@Example.com", "first-password") == 0
    row = await db.fetchrow("SELECT role, is_verified FROM users WHERE email = 'root@example.com'")
    assert row is not None and row["role"] == "ADMIN" and row["is_verified"]
    status, body = await login(client, "root@example.com", "first-password")
    assert status == 200 and body["user"]["role"] == "ADMIN"
    old_refresh = body["refresh_token"]

    # running it again resets the password and ends the old sessions
    assert await commands.create_admin(settings, "root@example.com", "second-password") == 0
    assert await db.fetchval("SELECT count(*) FROM users") == 1
    assert (await login(client, "root@example.com", "first-password"))[0] == 401
    assert (await login(client, "root@example.com", "second-password"))[0] == 200
    resp = await client.post("/auth/refresh", json={"refresh_token": old_refresh})
    assert resp.status == 401


async def test_create_admin_refuses_bad_input_and_other_roles(
    client: Client, settings: Settings, db: asyncpg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await commands.create_admin(settings, "not-an-email", "long-enough-pw") == 2
    assert await commands.create_admin(settings, "a@example.com", "short") == 2
    await register(client, email="client@example.com")
    assert await commands.create_admin(settings, "client@example.com", "long-enough-pw") == 1
    assert await db.fetchval("SELECT role FROM users") == "CLIENT"
    err = capsys.readouterr().err
    assert "long-enough-pw" not in err  # passwords are never echoed


async def test_seed_creates_verified_artisans_and_clients(
    client: Client, settings: Settings, db: asyncpg.Connection, tmp_path: Path
) -> None:
    out = tmp_path / "seed.jsonl"
    code = await commands.seed(
        settings, artisans=300, clients=100, out=out, center=PARIS, radius_km=10.0
    )
    assert code == 0
    assert os.stat(out).st_mode & 0o077 == 0  # holds a password and tokens
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(lines) == 400
    assert all(
        set(line)
        == {
            "user_id",
            "email",
            "password",
            "role",
            "specialty",
            "lat",
            "lon",
            "session_id",
            "access_token",
        }
        for line in lines
    )
    artisans = [line for line in lines if line["role"] == "ARTISAN"]
    clients = [line for line in lines if line["role"] == "CLIENT"]
    assert len(artisans) == 300 and len(clients) == 100
    assert all(c["lat"] is None and c["lon"] is None and c["specialty"] is None for c in clients)
    distances = [_haversine_km(PARIS, (a["lat"], a["lon"])) for a in artisans]
    assert max(distances) <= 10.0 + 1e-6
    # uniform over the disc: about a quarter of them within half the radius
    inner = sum(d <= 5.0 for d in distances) / len(distances)
    assert 0.15 < inner < 0.35
    assert {a["specialty"] for a in artisans} == set(SPECIALTIES)

    rows = await db.fetch(
        """SELECT a.user_id, a.status, a.current_status, a.level, a.specialty, a.rating,
                  ST_Y(a.location::geometry) AS lat, ST_X(a.location::geometry) AS lon,
                  u.email, u.role, u.is_verified
           FROM artisans a JOIN users u ON u.id = a.user_id"""
    )
    assert len(rows) == 300
    by_id = {str(r["user_id"]): r for r in rows}
    for a in artisans:
        r = by_id[a["user_id"]]
        assert r["status"] == "VERIFIED" and r["current_status"] == "OFFLINE"
        assert r["email"] == a["email"] and r["specialty"] == a["specialty"]
        assert r["lat"] == pytest.approx(a["lat"]) and r["lon"] == pytest.approx(a["lon"])
        assert r["level"] in LEVELS and 3.0 <= float(r["rating"]) <= 5.0
    assert len({r["level"] for r in rows}) == 3
    assert len({float(r["rating"]) for r in rows}) > 50
    assert await db.fetchval("SELECT count(*) FROM users WHERE role = 'CLIENT'") == 100

    # the tokens work, and the password logs in (which renews them)
    first = artisans[0]
    principal = verify_access_token(settings.jwt_secret, first["access_token"])
    assert str(principal.user_id) == first["user_id"] and principal.role == "ARTISAN"
    # of a login session, as a login's: checked on each request, ended by a logout
    assert principal.session_id == first["session_id"]
    families = await db.fetch("SELECT id, user_id FROM refresh_token_families")
    assert {(str(f["id"]), str(f["user_id"])) for f in families} == {
        (line["session_id"], line["user_id"]) for line in lines
    }
    me = await (await client.get("/auth/me", headers=bearer(clients[0]["access_token"]))).json()
    assert me["id"] == clients[0]["user_id"]
    status, body = await login(client, first["email"], first["password"])
    assert status == 200 and body["user"]["artisan"]["status"] == "VERIFIED"


async def test_seed_runs_do_not_collide(
    settings: Settings, db: asyncpg.Connection, tmp_path: Path
) -> None:
    for name in ("a", "b"):
        code = await commands.seed(
            settings,
            artisans=20,
            clients=20,
            out=tmp_path / f"{name}.jsonl",
            center=PARIS,
            radius_km=5.0,
        )
        assert code == 0
    assert await db.fetchval("SELECT count(*) FROM users") == 80


@pytest.mark.parametrize(
    "kwargs",
    [
        {"artisans": -1},
        {"clients": -5},
        {"center": (91.0, 2.0)},
        {"center": (48.0, 181.0)},
        {"radius_km": 0.0},
        {"radius_km": float("nan")},
    ],
)
async def test_seed_refuses_bad_arguments(
    settings: Settings, db: asyncpg.Connection, tmp_path: Path, kwargs: dict[str, Any]
) -> None:
    args: dict[str, Any] = {
        "artisans": 1,
        "clients": 1,
        "out": tmp_path / "x.jsonl",
        "center": PARIS,
        "radius_km": 5.0,
    }
    args.update(kwargs)
    assert await commands.seed(settings, **args) == 2
    assert await db.fetchval("SELECT count(*) FROM users") == 0


def test_random_points_stay_in_the_disc_near_the_antimeridian() -> None:
    rng = random.Random(7)
    for _ in range(500):
        lat, lon = commands.random_point_in_disc(rng, 10.0, 179.99, 20.0)
        assert -180.0 <= lon < 180.0
        assert _haversine_km((10.0, 179.99), (lat, lon)) <= 20.0 + 1e-6


async def _zendo(settings: Settings, *args: str) -> tuple[int, str]:
    env = {
        **os.environ,
        "ZENDO_DATABASE_URL": settings.database_url,
        "ZENDO_REDIS_URL": settings.redis_url,
        "ZENDO_JWT_SECRET": settings.jwt_secret,
        "ZENDO_BCRYPT_ROUNDS": "10",
        "ZENDO_STATE_DIR": str(settings.state_dir),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "zendo.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_the_zendo_console_commands(
    client: Client, settings: Settings, db: asyncpg.Connection, tmp_path: Path
) -> None:
    code, out = await _zendo(
        settings, "create-admin", "--email", "ops@example.com", "--password", "ops-password-1"
    )
    assert code == 0, out
    assert "ops-password-1" not in out
    assert (await login(client, "ops@example.com", "ops-password-1"))[0] == 200

    seed_file = tmp_path / "users.jsonl"
    code, out = await _zendo(
        settings,
        "seed",
        "--artisans",
        "7",
        "--clients",
        "3",
        "--out",
        str(seed_file),
        "--center",
        "48.85,2.35",
        "--radius-km",
        "3",
    )
    assert code == 0, out
    lines = [orjson.loads(line) for line in seed_file.read_bytes().splitlines()]
    assert [line["role"] for line in lines].count("ARTISAN") == 7 and len(lines) == 10
    assert all(
        _haversine_km((48.85, 2.35), (line["lat"], line["lon"])) <= 3.0 + 1e-6
        for line in lines
        if line["role"] == "ARTISAN"
    )
    assert await db.fetchval("SELECT count(*) FROM users") == 11
