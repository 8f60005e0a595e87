"""The ArtisanIndex mirror follows fixes, BUSY and OFFLINE, and rebuilds at start-up."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from core import appkeys
from core.settings import Settings
from gateway import live
from gateway.mirror import _apply, follow, get_index
from matching import ArtisanIndex
from matching.index import SMALL_BATCH
from tests.gateway.conftest import MakeClient, connect, eventually, fix, new_artisan, now_ms


def _status(client: TestClient[Any, Any], artisan_id: Any) -> str | None:
    record = get_index(client.app).get(str(artisan_id))
    return None if record is None else record.status


async def test_mirror_follows_fixes_busy_and_offline(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    artisan_id, token = await new_artisan(db, gw_settings, specialty="GLAZIER", level="PRO_PLUS")
    ws = await connect(gw, token)
    await ws.send_json(fix(48.8600, 2.3400, now_ms()))

    async def online() -> bool:
        return _status(gw, artisan_id) == "ONLINE"

    await eventually(online)
    index = get_index(gw.app)
    found = index.query(48.8601, 2.3401, "GLAZIER", k=5, max_km=1.0)
    assert [c.artisan_id for c in found] == [str(artisan_id)]
    record = index.get(str(artisan_id))
    assert (record.lat, record.lon, record.level, record.rating) == (48.86, 2.34, "PRO_PLUS", 4.5)

    await live.set_busy(gw.app[appkeys.REDIS], artisan_id)

    async def busy() -> bool:
        return _status(gw, artisan_id) == "BUSY"

    await eventually(busy)
    assert index.query(48.8601, 2.3401, "GLAZIER", k=5, max_km=1.0) == []
    await live.set_available(gw.app[appkeys.REDIS], artisan_id)
    await eventually(online)

    await ws.send_json({"type": "presence", "status": "OFFLINE"})

    async def offline() -> bool:
        return _status(gw, artisan_id) == "OFFLINE"

    await eventually(offline)
    await ws.close()


async def test_mirror_rebuilds_from_live_state_at_start_up(
    make_client: MakeClient, db: asyncpg.Connection, gw_settings: Settings
) -> None:
    first = await make_client()
    ids = []
    for i in range(3):
        artisan_id, token = await new_artisan(db, gw_settings, specialty="PLUMBER")
        ws = await connect(first, token)
        await ws.send_json(fix(48.85 + i * 0.01, 2.35, now_ms()))
        ids.append((artisan_id, ws))
    await live.set_busy(first.app[appkeys.REDIS], ids[2][0])

    async def all_stored() -> bool:
        states = [await live.read_live(first.app[appkeys.REDIS], a) for a, _ in ids]
        return all(s is not None for s in states)

    await eventually(all_stored)
    # A new process (fresh app) starts: its index is rebuilt from Redis.
    second = await make_client()
    index = get_index(second.app)

    async def rebuilt() -> bool:
        return all(str(a) in index for a, _ in ids)

    await eventually(rebuilt)
    assert [index.get(str(a)).status for a, _ in ids] == ["ONLINE", "ONLINE", "BUSY"]
    assert abs(index.get(str(ids[1][0])).lat - 48.86) < 1e-9
    for _a, ws in ids:
        await ws.close()


async def test_the_mirror_loop_ends_on_its_stop_flag_without_a_cancel(
    gw: TestClient[Any, Any],
) -> None:
    """The loop ends on its own flag, within one XREAD block, without a cancel (redis-py
    can swallow one during a rebuild)."""
    stop = asyncio.Event()
    task = asyncio.create_task(
        follow(gw.app[appkeys.REDIS], get_index(gw.app), stop=stop, block_ms=100)
    )
    await asyncio.sleep(0.3)  # rebuilt, and now blocked in XREAD
    assert not task.done()
    stop.set()
    await asyncio.wait_for(task, timeout=2.0)
    assert task.done() and not task.cancelled()


def _rows(n: int, status: str) -> list[tuple[str, str, str, str, str, str, str]]:
    return [
        (f"00000000-0000-4000-8000-{i:012d}", f"{48.85 + i * 1e-4!r}", f"{2.35 + i * 1e-4!r}",
         "PLUMBER", "PRO_PLUS", "4.5", status)
        for i in range(n)
    ]  # fmt: skip


def test_a_few_rows_are_applied_one_by_one_as_a_batch_would_be() -> None:
    """A batch of at most SMALL_BATCH rows is upserted row by row (the column path has a
    fixed cost of hundreds of µs once cold); the index ends up as through the column path,
    with later snapshots winning and a status-only row changing a known artisan's status."""
    few = SMALL_BATCH - 2
    assert few >= 3
    for n in (few, SMALL_BATCH + 5):
        start = _rows(n, "ONLINE")
        moved = [(*r[:6], "BUSY") for r in start[:2]]  # the same ids, later snapshots
        status_only = [(start[2][0], "", "", "", "", "", "OFFLINE")]
        by_rows, in_bulk = ArtisanIndex(), ArtisanIndex()
        assert _apply(by_rows, start) == n
        assert _apply(by_rows, moved + status_only) == 2  # a status alone is not an upsert
        for aid, lat, lon, spec, level, rating, status in start:
            in_bulk.upsert_many([aid], [float(lat)], [float(lon)], [spec], [level],
                                [float(rating)], [status])  # fmt: skip
        for aid, *_rest, status in moved:
            in_bulk.set_status(aid, status)
        in_bulk.set_status(start[2][0], "OFFLINE")
        for aid, *_rest in start:
            assert by_rows.get(aid) == in_bulk.get(aid)
        busy, offline, online = (by_rows.get(start[i][0]) for i in (0, 2, 3))
        assert busy is not None and busy.status == "BUSY"
        assert offline is not None and offline.status == "OFFLINE"
        assert online is not None and online.status == "ONLINE"
