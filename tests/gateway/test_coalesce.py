"""The per-turn coalescer behind socket registrations and presence writes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from gateway.coalesce import Coalescer


class Recorder:
    """A `write` that records its batches and answers each item doubled (or raises
    the item's own error when the item is negative)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.fail_next: Exception | None = None
        self.gate: asyncio.Event | None = None

    async def write(self, batch: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(batch))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        return [ValueError(f"bad {i}") if i < 0 else 2 * i for i in batch]


async def test_calls_of_one_turn_share_one_write_and_get_their_own_answers() -> None:
    rec = Recorder()
    calls = Coalescer(rec.write, chunk=100, name="test")
    answers = await asyncio.gather(*(calls.call(i) for i in range(10)))
    assert answers == [2 * i for i in range(10)]
    assert rec.batches == [list(range(10))] and calls.batches == 1
    assert calls.waiting == 0


async def test_an_item_error_reaches_its_caller_only() -> None:
    calls = Coalescer(Recorder().write, chunk=100, name="test")
    results = await asyncio.gather(calls.call(1), calls.call(-1), calls.call(2),
                                   return_exceptions=True)  # fmt: skip
    assert results[0] == 2 and results[2] == 4
    assert isinstance(results[1], ValueError) and str(results[1]) == "bad -1"


async def test_a_failed_write_fails_its_batch_and_the_next_batch_is_written() -> None:
    rec = Recorder()
    rec.fail_next = ConnectionError("redis down")
    calls = Coalescer(rec.write, chunk=2, name="test")
    results = await asyncio.gather(*(calls.call(i) for i in range(4)), return_exceptions=True)
    assert [type(r) for r in results[:2]] == [ConnectionError, ConnectionError]
    assert results[2:] == [4, 6]
    assert rec.batches == [[0, 1], [2, 3]]


async def test_chunks_bound_each_write() -> None:
    rec = Recorder()
    calls = Coalescer(rec.write, chunk=3, name="test")
    assert await asyncio.gather(*(calls.call(i) for i in range(7))) == [2 * i for i in range(7)]
    assert rec.batches == [[0, 1, 2], [3, 4, 5], [6]]


async def test_calls_during_a_write_form_the_next_batch() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()
    calls = Coalescer(rec.write, chunk=100, name="test")
    first = [asyncio.ensure_future(calls.call(i)) for i in range(3)]
    await asyncio.sleep(0.01)  # the first write is under way, held by the gate
    later = [asyncio.ensure_future(calls.call(i)) for i in range(3, 5)]
    await asyncio.sleep(0.01)
    assert calls.waiting == 5
    rec.gate.set()
    assert await asyncio.gather(*first, *later) == [0, 2, 4, 6, 8]
    assert rec.batches == [[0, 1, 2], [3, 4]]


async def test_a_cancelled_caller_leaves_the_others_their_answers() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()
    calls = Coalescer(rec.write, chunk=100, name="test")
    tasks = [asyncio.ensure_future(calls.call(i)) for i in range(3)]
    await asyncio.sleep(0.01)
    tasks[1].cancel()
    rec.gate.set()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert done[0] == 0 and done[2] == 4 and isinstance(done[1], asyncio.CancelledError)
    assert calls.waiting == 0


async def test_stop_cancels_the_write_under_way_and_the_waiting_calls() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()  # never set: the write hangs
    calls = Coalescer(rec.write, chunk=1, name="test")
    tasks = [asyncio.ensure_future(calls.call(i)) for i in range(3)]
    await asyncio.sleep(0.01)
    await calls.stop()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(d, asyncio.CancelledError) for d in done)
    assert rec.batches == [[0]]  # the others were never written


async def test_a_write_answering_the_wrong_count_fails_its_callers_instead_of_hanging() -> None:
    async def short(batch: Sequence[int]) -> list[int | BaseException]:
        return [1]

    calls = Coalescer(short, chunk=10, name="short")
    results = await asyncio.wait_for(
        asyncio.gather(calls.call(1), calls.call(2), return_exceptions=True), 1.0
    )
    assert all(isinstance(r, RuntimeError) and "1 answers for 2" in str(r) for r in results)


def test_chunk_must_be_positive() -> None:
    with pytest.raises(ValueError, match="chunk"):
        Coalescer(Recorder().write, chunk=0, name="test")
