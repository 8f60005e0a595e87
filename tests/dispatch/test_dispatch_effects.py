"""Post-commit effects: pushes cancelled at shutdown leave nothing half-made."""

from __future__ import annotations

import asyncio
import gc
import uuid
from typing import Any

import pytest
from aiohttp import web

from dispatch import appkeys
from dispatch.dispatcher.effects import Effects


class _Notifier:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def notify(self, user_id: uuid.UUID, frame: dict[str, Any]) -> None:
        self.sent.append(frame)


async def test_a_push_cancelled_before_it_starts_leaves_no_unawaited_coroutine() -> None:
    """Found as a rare teardown error: a dispatcher task cancelled at app shutdown, in
    the instant between building the push gather and its tasks starting, left notify()
    coroutines that were never awaited (a RuntimeWarning when collected)."""
    app = web.Application()
    notifier = _Notifier()
    app[appkeys.NOTIFIER] = notifier  # type: ignore[assignment]
    effects = Effects()
    for _ in range(3):
        effects.push(uuid.uuid4(), {"type": "offer.result"})
    task = asyncio.create_task(effects.apply(app))
    # Two loop turns: apply() starts its gather, then _push_frames builds the push
    # gather; the push tasks themselves have not run yet.
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    gc.collect()  # a never-awaited coroutine would warn here (an error under pytest)
    assert notifier.sent == []


async def test_pushes_reach_the_notifier() -> None:
    app = web.Application()
    notifier = _Notifier()
    app[appkeys.NOTIFIER] = notifier  # type: ignore[assignment]
    effects = Effects()
    effects.push(uuid.uuid4(), {"type": "offer.result"})
    await effects.apply(app)
    assert notifier.sent == [{"type": "offer.result"}]
    assert effects.pushed_at > 0
