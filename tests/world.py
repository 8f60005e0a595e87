"""The dispatch test world: short offer timeouts, a fast poller, artisans in the index.

`World` bundles the app, its HTTP client, a DB connection and helpers. Unit-level
dispatcher tests swap the notifier for a `FrameRecorder` (the end-to-end story test
uses real sockets through the real gateway instead).

The `world` fixture is in tests/conftest.py. The folders of the dispatch contexts
(interventions, offers, dispatcher) import `dispatch_settings` into their conftest.py:
it overrides `settings` there with these timings.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from core import appkeys
from core.settings import Settings
from dispatch import appkeys as dispatch_keys
from dispatch.dispatcher import DispatcherConfig
from tests.conftest import TEST_DATABASE_URL, TEST_REDIS_URL
from tests.factories import bearer, create_user, token_for
from zendo.app import create_app

PARIS = (48.8566, 2.3522)
FAST = DispatcherConfig(poll_interval_s=0.05, lease_s=2.0, recheck_s=0.2, search_window_s=3.0)


class FrameRecorder:
    """Stands in for the gateway notifier in dispatcher unit tests: records every frame."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, dict[str, Any]]] = []
        self._changed = asyncio.Event()

    async def notify(self, user_id: uuid.UUID | str, frame: dict[str, Any]) -> None:
        self.deliver(user_id, frame)

    def deliver(self, user_id: uuid.UUID | str, frame: dict[str, Any]) -> bytes:
        self.frames.append((str(user_id), frame))
        self._changed.set()
        return b""

    def deliver_here(self, user_id: uuid.UUID | str, frame: dict[str, Any]) -> tuple[bytes, int]:
        return self.deliver(user_id, frame), 1

    async def publish_many(self, frames: Sequence[tuple[uuid.UUID | str, bytes]]) -> None:
        """No other process in these tests."""

    async def close_session(self, user_id: uuid.UUID | str, session_id: str) -> None:
        """No sockets in these tests."""

    def of(self, user_id: uuid.UUID | str, type_: str | None = None) -> list[dict[str, Any]]:
        return [
            f for u, f in self.frames if u == str(user_id) and (type_ is None or f["type"] == type_)
        ]

    async def wait_for(self, predicate: Callable[[], Any], within: float = 5.0) -> Any:
        async with asyncio.timeout(within):
            while True:
                result = predicate()
                if result:
                    return result
                self._changed.clear()
                await self._changed.wait()

    async def offer_for(
        self, artisan_id: uuid.UUID, nth: int = 0, within: float = 5.0
    ) -> dict[str, Any]:
        """The artisan's nth offer frame (0-based), waiting for it to arrive."""
        offers = await self.wait_for(lambda: len(self.of(artisan_id, "offer")) > nth, within)
        del offers
        return self.of(artisan_id, "offer")[nth]


@dataclass
class World:
    app: web.Application
    client: TestClient[Any, Any]
    db: asyncpg.Connection
    settings: Settings
    recorder: FrameRecorder
    tokens: dict[uuid.UUID, str] = field(default_factory=dict)

    @property
    def index(self) -> Any:
        return self.app[appkeys.MATCH_INDEX]

    def auth(self, user_id: uuid.UUID) -> dict[str, str]:
        return bearer(self.tokens[user_id])

    async def cut_redis(self) -> None:
        """Make the app's Redis unreachable: every new connection fails (nothing listens
        on port 1) and the open ones are dropped."""
        pool = self.app[appkeys.REDIS].connection_pool
        pool.connection_kwargs["port"] = 1
        await pool.disconnect()
        pool.reset()  # type: ignore[no-untyped-call]  # the next connections use port 1

    async def user(self, role: str = "CLIENT") -> uuid.UUID:
        uid = await create_user(self.db, role=role)
        self.tokens[uid] = token_for(self.settings, uid, role)
        return uid

    async def artisan(
        self,
        lat: float = PARIS[0],
        lon: float = PARIS[1],
        *,
        specialty: str = "PLUMBER",
        level: str = "STANDARD",
        rating: float = 4.0,
        online: bool = True,
        verified: bool = True,
    ) -> uuid.UUID:
        uid = await create_user(
            self.db,
            role="ARTISAN",
            specialty=specialty,
            level=level,
            rating=rating,
            lat=lat,
            lon=lon,
            artisan_status="VERIFIED" if verified else "PENDING",
        )
        self.tokens[uid] = token_for(self.settings, uid, "ARTISAN")
        if online:
            self.index.upsert(str(uid), lat, lon, specialty, level, rating, "ONLINE")
        return uid

    async def request(
        self,
        client_id: uuid.UUID,
        lat: float = PARIS[0],
        lon: float = PARIS[1],
        specialty: str = "PLUMBER",
        **extra: Any,
    ) -> dict[str, Any]:
        resp = await self.client.post(
            "/interventions",
            json={"specialty": specialty, "lat": lat, "lon": lon, **extra},
            headers=self.auth(client_id),
        )
        assert resp.status == 201, await resp.text()
        job: dict[str, Any] = await resp.json()
        return job

    async def accept(self, artisan_id: uuid.UUID, offer_id: str) -> Any:
        return await self.client.post(f"/offers/{offer_id}/accept", headers=self.auth(artisan_id))

    async def status(self, job_id: str) -> str:
        return str(
            await self.db.fetchval(
                "SELECT status FROM interventions WHERE id = $1", uuid.UUID(job_id)
            )
        )

    async def wait_status(self, job_id: str, wanted: str, within: float = 5.0) -> None:
        await poll_until(lambda: self._has_status(job_id, wanted), within)

    async def _has_status(self, job_id: str, wanted: str) -> bool:
        return await self.status(job_id) == wanted


async def poll_until(check: Callable[[], Any], within: float = 5.0) -> Any:
    """Re-evaluate `check` (sync or async) every 20 ms until it is truthy."""
    async with asyncio.timeout(within):
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
            await asyncio.sleep(0.02)


@pytest.fixture(name="settings")
def dispatch_settings(tmp_path: Path) -> Settings:
    """`settings` for the dispatch contexts: 1 s offers, a 10 km radius."""
    return Settings(
        database_url=TEST_DATABASE_URL,
        redis_url=TEST_REDIS_URL,
        jwt_secret="test-secret-" + "x" * 40,
        bcrypt_rounds=10,
        state_dir=tmp_path / ".zendo",
        offer_timeout_s=1.0,
        match_radius_km=10.0,
    )


def build_app(settings: Settings, recorder: FrameRecorder | None) -> web.Application:
    app = create_app(settings)
    app[dispatch_keys.DISPATCHER].config = FAST
    if recorder is not None:
        app[appkeys.NOTIFIER] = recorder
    return app
