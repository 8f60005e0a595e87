"""WebSocket input let through in bounded shares of each event-loop turn.

The loop hands every readable socket's bytes to its protocol in one pass, and the
frames read wake their sockets' tasks, which all run in the next turn. When thousands
of sockets speak at once (every app's close frame after a network blip or a deploy, a
reconnect storm's first fixes) that pass and that turn grow to hundreds of milliseconds,
and a request arriving meanwhile waits behind all of them: in a mass close of 10,000
sockets a request every 10 ms waited up to 0.7-1.3 s, and 0.1-0.4 s with the turns
shared (BENCHMARKS.md).

`FrameTurns` lets at most `per_turn` reads of WebSocket bytes reach aiohttp in one turn.
A socket whose read finds the turn's share spent keeps those bytes, stops reading (the
kernel holds what follows, its end included: TCP's own back-pressure) and is fed in a
later turn, first come first served, so each socket's frames keep their order; a
connection that ends while the turn's share is spent ends in a later turn too. HTTP
requests, WebSocket handshakes among them, are never held. Outside a burst every read
goes through at once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Final, Protocol

#: WebSocket reads let through per turn: 64 x 40-90 µs (a fix, a close) = 3-6 ms of a turn
FRAME_READS_PER_TURN: Final = 64


class Holder(Protocol):
    """A connection holding bytes it read while the turn's share was spent."""

    def release_held(self) -> None:
        """Hand the held bytes to the parser and read again."""


class FrameTurns:
    """At most `per_turn` WebSocket reads go through per event-loop iteration."""

    def __init__(self, per_turn: int) -> None:
        if per_turn < 1:
            raise ValueError("per_turn must be at least 1")
        self._per_turn = per_turn
        self._passed = 0  # reads gone through since the last `_next_turn`
        self._held: deque[Holder] = deque()
        self._armed = False
        self.held_total = 0  # reads held for a later turn, since start

    @property
    def holding(self) -> int:
        """Connections waiting for a later turn."""
        return len(self._held)

    def admit(self) -> bool:
        """Whether a read may go through in this turn (counted if so). While some are
        held, none goes ahead of them."""
        self._arm()
        if self._held or self._passed >= self._per_turn:
            return False
        self._passed += 1
        return True

    def hold(self, holder: Holder) -> None:
        """`holder` is fed in the first turn with room, after those held before it."""
        self._held.append(holder)
        self.held_total += 1
        self._arm()

    def _arm(self) -> None:
        # a callback scheduled now runs in the next iteration, after this one's reads
        if not self._armed:
            self._armed = True
            asyncio.get_running_loop().call_soon(self._next_turn)

    def _next_turn(self) -> None:
        self._armed = False
        self._passed = 0
        held = self._held
        while held and self._passed < self._per_turn:
            self._passed += 1
            held.popleft().release_held()
        if held or self._passed:
            self._arm()
