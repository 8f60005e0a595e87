"""Stopping background tasks reliably at shutdown."""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("zendo.gateway")


async def stop_tasks(*tasks: asyncio.Task[None], timeout_s: float = 3.0) -> None:
    """Cancel the tasks and wait for them, cancelling again while they keep running.

    One `cancel()` is not always enough: a cancellation that lands inside redis-py at
    the wrong moment can be swallowed (redis-py asyncio cancellation races), and the
    task's loop then goes on forever, which hung app teardown. Re-cancelling hits the
    next await; after `timeout_s` the task is abandoned with a warning.
    """
    pending = {t for t in tasks if not t.done()}
    deadline = asyncio.get_running_loop().time() + timeout_s
    while pending:
        for task in pending:
            task.cancel()
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            log.warning("background tasks did not stop: %s", [t.get_name() for t in pending])
            return
        _done, pending = await asyncio.wait(pending, timeout=min(0.1, remaining))
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.warning("background task %s failed: %r", task.get_name(), task.exception())


async def finish_task(task: asyncio.Task[None] | None, timeout_s: float = 2.0) -> None:
    """Let a flush under way finish (a cancelled one would lose its batch); stop it only
    past `timeout_s`."""
    if task is None or task.done():
        return
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if not done:
        await stop_tasks(task)
