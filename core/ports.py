"""The interfaces one layer offers another through the app, without importing it.

The composition root (`zendo.app`) puts the implementations in the app under the
keys of `core.appkeys`: the gateway provides `Notifier` and `LiveState`, the offers
context `OfferActions`, the payments context `PaymentSteps`, the dispatcher
`DispatchHooks`, the composition root's admission control `WorkMeter`.
"""

from __future__ import annotations

import uuid
from collections.abc import Coroutine, Sequence
from typing import Any, Protocol

from core.effects import LiveChange, PaymentStep


class Notifier(Protocol):
    """Pushes frames to a user's sockets, on this process and on the others."""

    def deliver_here(
        self, user_id: uuid.UUID | str, frame: dict[str, Any]
    ) -> tuple[bytes | None, int]:
        """Onto this process's sockets of the user, with no await. Returns the encoded
        frame (None: not serialisable) and how many local sockets took it."""
        ...

    async def publish_many(self, frames: Sequence[tuple[uuid.UUID | str, bytes]]) -> None:
        """To the other processes holding the users; never raises (logs and counts)."""
        ...

    async def close_session(self, user_id: uuid.UUID | str, session_id: str) -> None:
        """Close the user's sockets of a logged-out session (4401), on every process;
        never raises."""
        ...


class LiveState(Protocol):
    async def apply(
        self,
        changes: Sequence[LiveChange],
        publish: Sequence[tuple[uuid.UUID | str, bytes]] = (),
    ) -> None:
        """Apply the changes to the live state and publish the frames other processes'
        sockets need (as `Notifier.publish_many`), all sent at once; never raises (logs
        each failure, maybe once the replies are read, after the call returned)."""
        ...


class OfferActions(Protocol):
    async def accept(self, *, artisan_id: uuid.UUID, offer_id: uuid.UUID) -> dict[str, Any]: ...

    async def decline(self, *, artisan_id: uuid.UUID, offer_id: uuid.UUID) -> None: ...


class WorkMeter(Protocol):
    """Counts work that reaches the process outside an HTTP request (an offer answered
    over a socket), so that admission control sees it: it is never refused (it moves a
    job along), but it holds the process as a request does, and when it is slow, new
    work is turned away first."""

    def admitted(self) -> None: ...

    def answered(self, handling_s: float, now: float) -> None:
        """The work admitted last is done; `now` is `time.perf_counter()`."""
        ...


class PaymentSteps(Protocol):
    async def run_step(self, step: PaymentStep) -> None:
        """One post-commit payment step; never raises (records and logs the error)."""
        ...


class DispatchHooks(Protocol):
    def kick(self, intervention_id: uuid.UUID) -> None:
        """Step this job now, in the background."""
        ...

    def disarm(self, intervention_id: uuid.UUID) -> None:
        """The job left SEARCHING: drop its in-process timer."""
        ...

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a post-commit task in the background; cancelled and awaited at shutdown."""
        ...
