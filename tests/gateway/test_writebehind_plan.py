"""The write-behind is planned for the batch at hand: a plan made once for any batch (a
pooled connection's prepared statement, planned on a fresh database) hashed every
artisan on each flush, a cost that grew with the fleet."""

from __future__ import annotations

import asyncpg

from gateway import repo

FLEET = 5000


async def test_a_flush_finds_its_batch_by_index_in_a_large_fleet(db: asyncpg.Connection) -> None:
    await db.execute(
        f"""WITH u AS (INSERT INTO users (email, password_hash, role)
                       SELECT 'fleet' || g || '@example.com', 'x', 'ARTISAN'
                       FROM generate_series(1, {FLEET}) AS g RETURNING id)
            INSERT INTO artisans (user_id, status, specialty, location)
            SELECT id, 'VERIFIED', 'PLUMBER',
                   ST_SetSRID(ST_MakePoint(2.35, 48.85), 4326)::geography FROM u"""
    )
    ids = [str(r["user_id"]) for r in await db.fetch("SELECT user_id FROM artisans LIMIT 3")]
    plans: list[str] = []
    db.add_log_listener(lambda _conn, message: plans.append(message.message))
    await db.execute("LOAD 'auto_explain'")
    await db.execute("SET auto_explain.log_min_duration = 0")
    await db.execute("SET auto_explain.log_level = 'notice'")
    # What a long-lived pooled connection ends up with: one plan for every batch.
    await db.execute("SET plan_cache_mode = force_generic_plan")
    async with db.transaction():
        await repo.write_positions(
            db,
            ids=ids,
            lats=[48.86] * 3,
            lons=[2.36] * 3,
            ts_ms=[1.8e12] * 3,
            statuses=["ONLINE"] * 3,
            min_move_m=25.0,
            max_age_s=60.0,
        )
    update = [p for p in plans if "Update on artisans" in p]
    assert len(update) == 1
    assert "Seq Scan on artisans" not in update[0]
    assert "artisans_pkey" in update[0]
    moved = await db.fetchval(
        "SELECT count(*) FROM artisans WHERE current_status = 'ONLINE' AND user_id = ANY($1::uuid[])",
        ids,
    )
    assert moved == 3
