"""Spread a burst of the same work over event-loop iterations.

When thousands of sockets close together (a network blip, a load balancer restart, the
end of a load test), each one's cleanup (its close frame, the session's teardown, the
handler's return through the middlewares, its access-log line) costs the process about
100 µs. The loop runs every callback that was ready when an iteration began before it
polls the network again, so those cleanups ran back to back and a request arriving
meanwhile waited behind all of them.

`PerTurn` lets at most `per_turn` callers go on per iteration, first come first served;
the others wait for a later iteration, between which the loop serves the network.
Outside a burst a caller goes on at once, without yielding. A coroutine calls `wait`; a
protocol's callback, which cannot await, asks `admit` and, refused, queues a `hold`
callback that a later iteration calls: `zendo/system/request_screen.py` lets the close
frames and the connections' ends that start these cleanups reach aiohttp that way.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Callable

#: a queued caller's release: lets it go on, and says whether it did (False: it left)
Release = Callable[[], bool]


class PerTurn:
    """At most `per_turn` callers go on per event-loop iteration."""

    def __init__(self, per_turn: int) -> None:
        if per_turn < 1:
            raise ValueError("per_turn must be at least 1")
        self._per_turn = per_turn
        self._passed = 0  # callers gone on since the last `_next_turn`
        self._held: deque[Release] = deque()
        self._armed = False
        self.held_total = 0  # callers queued for a later iteration, since start

    @property
    def waiting(self) -> int:
        """Callers queued for a later iteration (a cancelled waiter until its turn)."""
        return len(self._held)

    def admit(self) -> bool:
        """Whether a caller may go on in this iteration (counted if so). While some are
        queued, none goes ahead of them."""
        self._arm()
        if self._held or self._passed >= self._per_turn:
            return False
        self._passed += 1
        return True

    def hold(self, release: Release) -> None:
        """`release` is called in the first iteration with room, after those queued
        before it."""
        self._held.append(release)
        self.held_total += 1
        self._arm()

    async def wait(self) -> None:
        """Return in this iteration if it has room, else in the first one that has.

        A cancelled waiter leaves the line and takes no one's place.
        """
        if self.admit():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.hold(functools.partial(_wake, fut))
        await fut

    def _arm(self) -> None:
        # a callback scheduled now runs in the next iteration, after the callers let go
        # in this one: each iteration takes one batch
        if not self._armed:
            self._armed = True
            asyncio.get_running_loop().call_soon(self._next_turn)

    def _next_turn(self) -> None:
        self._armed = False
        self._passed = 0
        held = self._held
        while held and self._passed < self._per_turn:
            if held.popleft()():
                self._passed += 1
        if held or self._passed:
            self._arm()


def _wake(fut: asyncio.Future[None]) -> bool:
    if fut.done():  # cancelled: skipped
        return False
    fut.set_result(None)
    return True
