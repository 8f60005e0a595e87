"""Calls of one loop turn served together: one round trip for many callers.

A reconnect storm brings thousands of sockets that each need the same small write (their
registration, their first presence) within seconds; one round trip each costs the
process more than the work itself and makes them wait in line. A `Coalescer` lets each
caller await its own answer while the calls queued during one event-loop turn go out
together, at most `chunk` per `write`; calls arriving while a write is under way form
the next one. Outside a burst a call goes out alone, one loop turn later.

`write(batch)` answers every item of its batch, in order: a result, or the exception
that item met (raised to its caller only). If `write` itself raises, every caller of
that batch gets the exception; the next batch is still written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Write = Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]]


@dataclass(slots=True)
class _Call(Generic[T, R]):
    item: T
    done: asyncio.Future[R]


class Coalescer(Generic[T, R]):
    def __init__(self, write: Write[T, R], *, chunk: int, name: str) -> None:
        if chunk < 1:
            raise ValueError("chunk must be at least 1")
        self._write = write
        self._chunk = chunk
        self._name = name
        self._queue: list[_Call[T, R]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.waiting = 0  # calls queued or in the write under way
        self.batches = 0  # writes so far

    async def call(self, item: T) -> R:
        """`item`'s answer once its batch is written; raises what it met."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[R] = loop.create_future()
        self._queue.append(_Call(item, done))
        self.waiting += 1
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._run(), name=self._name)
        try:
            return await done
        finally:
            self.waiting -= 1

    async def stop(self) -> None:
        """Cancels the write under way and every call still waiting."""
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        for queued in self._queue:
            queued.done.cancel()
        self._queue.clear()

    async def _run(self) -> None:
        await asyncio.sleep(0)  # let the calls of this loop turn join the batch
        while self._queue:
            batch, self._queue = self._queue[: self._chunk], self._queue[self._chunk :]
            self.batches += 1
            try:
                answers = await self._write([c.item for c in batch])
            except asyncio.CancelledError:
                for c in batch:
                    c.done.cancel()
                raise
            except Exception as exc:
                for c in batch:
                    if not c.done.done():
                        c.done.set_exception(exc)
                continue
            if len(answers) != len(batch):  # a bug in `write`: nobody may wait forever
                lost = RuntimeError(f"{self._name}: {len(answers)} answers for {len(batch)}")
                answers = [lost] * len(batch)
            for c, answer in zip(batch, answers, strict=True):
                if c.done.done():  # its caller went away meanwhile
                    continue
                if isinstance(answer, BaseException):
                    c.done.set_exception(answer)
                else:
                    c.done.set_result(answer)
