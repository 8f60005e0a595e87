"""Spread a burst of the same work over event-loop iterations.

When thousands of sockets close together (a network blip, a load balancer restart, the
end of a load test), each one's cleanup (its close frame, the session's teardown, the
handler's return through the middlewares, its access-log line) costs the process about
100 µs. The loop runs every callback that was ready when an iteration began before it
polls the network again, so those cleanups ran back to back and a request arriving
meanwhile waited behind all of them.

`PerTurn.wait` lets at most `per_turn` callers go on per iteration, first come first
served; the others wait for a later iteration, between which the loop serves the
network. Outside a burst a caller goes on at once, without yielding. The close frames and
the connections' ends that start these cleanups are spread over turns before they reach
aiohttp (`zendo/system/frame_turns.py`).
"""

from __future__ import annotations

import asyncio
from collections import deque


class PerTurn:
    """At most `per_turn` callers of `wait` go on per event-loop iteration."""

    def __init__(self, per_turn: int) -> None:
        if per_turn < 1:
            raise ValueError("per_turn must be at least 1")
        self._per_turn = per_turn
        self._passed = 0  # callers gone on since the last `_next_turn`
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._armed = False

    @property
    def waiting(self) -> int:
        """Callers waiting for a later iteration."""
        return sum(1 for fut in self._waiters if not fut.done())

    async def wait(self) -> None:
        """Return in this iteration if it has room, else in the first one that has.

        A cancelled waiter leaves the line and takes no one's place.
        """
        loop = asyncio.get_running_loop()
        if not self._waiters and self._passed < self._per_turn:
            self._passed += 1
            self._arm(loop)
            return
        fut: asyncio.Future[None] = loop.create_future()
        self._waiters.append(fut)
        self._arm(loop)
        await fut

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        # a callback scheduled now runs in the next iteration, after the tasks let go in
        # this one: each iteration takes one batch
        if not self._armed:
            self._armed = True
            loop.call_soon(self._next_turn, loop)

    def _next_turn(self, loop: asyncio.AbstractEventLoop) -> None:
        self._armed = False
        self._passed = 0
        waiters = self._waiters
        while waiters and self._passed < self._per_turn:
            fut = waiters.popleft()
            if not fut.done():  # cancelled: skipped
                fut.set_result(None)
                self._passed += 1
        if waiters or self._passed:
            self._arm(loop)
