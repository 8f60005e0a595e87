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
    def __init__(self, sockets_here: int = 1) -> None:
        self.sent: list[dict[str, Any]] = []
        self.published: list[bytes] = []
        self.sockets_here = sockets_here

    def deliver_here(self, user_id: uuid.UUID, frame: dict[str, Any]) -> tuple[bytes, int]:
        self.sent.append(frame)
        return b"frame", self.sockets_here

    async def publish_many(self, frames: list[tuple[uuid.UUID, bytes]]) -> None:
        await asyncio.sleep(0)  # a real publish is a Redis round trip
        self.published += [data for _uid, data in frames]


async def test_a_push_cancelled_before_it_starts_leaves_no_unawaited_coroutine() -> None:
    """Found as a rare teardown error: a dispatcher task cancelled at app shutdown, in
    the instant between building the push gather and its tasks starting, left notify()
    coroutines that were never awaited (a RuntimeWarning when collected). Local
    deliveries happen before the first await; the cross-process publishes are what a
    cancellation can cut short."""
    app = web.Application()
    notifier = _Notifier()
    app[appkeys.NOTIFIER] = notifier  # type: ignore[assignment]
    effects = Effects()
    for _ in range(3):
        effects.push(uuid.uuid4(), {"type": "offer.result"})
    task = asyncio.create_task(effects.apply(app))
    # Two loop turns: apply() delivers locally and starts its gather, then
    # _publish_remote builds the publish gather; its tasks have not run yet.
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    gc.collect()  # a never-awaited coroutine would warn here (an error under pytest)
    assert len(notifier.sent) == 3  # delivered before the first await
    assert notifier.published == []


async def test_pushes_reach_the_notifier() -> None:
    app = web.Application()
    notifier = _Notifier()
    app[appkeys.NOTIFIER] = notifier  # type: ignore[assignment]
    effects = Effects()
    effects.push(uuid.uuid4(), {"type": "offer.result"})
    await effects.apply(app)
    assert notifier.sent == [{"type": "offer.result"}]
    assert notifier.published == [b"frame"]
    assert effects.pushed_at > 0


async def test_local_sockets_get_their_frames_before_the_first_await() -> None:
    """No loop turn between a commit and the local push: a task per frame used to cost
    one or two turns under load."""
    app = web.Application()
    notifier = _Notifier()
    app[appkeys.NOTIFIER] = notifier  # type: ignore[assignment]
    effects = Effects()
    effects.push(uuid.uuid4(), {"type": "intervention.status"})
    task = asyncio.ensure_future(effects.apply(app))
    await asyncio.sleep(0)  # apply() has run up to its first await, no further
    assert notifier.sent == [{"type": "intervention.status"}]
    assert notifier.published == []
    await task
    assert notifier.published == [b"frame"]


async def test_frames_delivered_before_the_release_are_not_delivered_again() -> None:
    """A hot path hands its frames to local sockets while it still holds the connection
    (`deliver`), then applies the rest once the connection is back in the pool."""
    app = web.Application()
    notifier = _Notifier()
    app[appkeys.NOTIFIER] = notifier  # type: ignore[assignment]
    effects = Effects()
    effects.push(uuid.uuid4(), {"type": "intervention.status"})
    effects.deliver(app)
    effects.deliver(app)
    assert notifier.sent == [{"type": "intervention.status"}]
    assert notifier.published == []  # the remote half waits for apply()
    await effects.apply(app)
    assert notifier.sent == [{"type": "intervention.status"}]
    assert notifier.published == [b"frame"]


async def test_a_push_is_timed_at_the_local_socket_or_once_the_other_nodes_have_it() -> None:
    app = web.Application()
    app[appkeys.NOTIFIER] = _Notifier(sockets_here=1)  # type: ignore[assignment]
    here = Effects()
    here.push(uuid.uuid4(), {"type": "offer"})
    here.deliver(app)
    assert here.pushed_at > 0  # written to this process's socket: sent

    app[appkeys.NOTIFIER] = _Notifier(sockets_here=0)  # type: ignore[assignment]
    elsewhere = Effects()
    elsewhere.push(uuid.uuid4(), {"type": "offer"})
    elsewhere.deliver(app)
    assert elsewhere.pushed_at == 0  # nobody here took it: not sent yet
    await elsewhere.apply(app)
    assert elsewhere.pushed_at > 0 and elsewhere.pushed_wall > 0
