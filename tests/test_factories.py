from __future__ import annotations

import asyncpg

from core.settings import Settings
from core.tokens import verify_access_token
from tests.factories import create_user, token_for


async def test_factory_creates_artisan_with_location(
    db: asyncpg.Connection, settings: Settings
) -> None:
    uid = await create_user(db, role="ARTISAN", lat=48.85, lon=2.35, specialty="GLAZIER")
    row = await db.fetchrow(
        "SELECT specialty, ST_Y(location::geometry) AS lat, ST_X(location::geometry) AS lon FROM artisans WHERE user_id=$1",
        uid,
    )
    assert row is not None
    assert (row["specialty"], round(row["lat"], 6), round(row["lon"], 6)) == (
        "GLAZIER",
        48.85,
        2.35,
    )
    principal = verify_access_token(settings.jwt_secret, token_for(settings, uid, "ARTISAN"))
    assert principal.user_id == uid and principal.role == "ARTISAN"
