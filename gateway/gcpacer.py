"""Garbage collection paced by a clock, for a process holding thousands of sockets.

With 10,000 sockets almost nothing here is
cyclic garbage (collections free 0-40 objects) and objects die by reference counting,
so what the collector costs is scanning live objects. Each socket keeps a few
medium-lived ones (its pending receive: coroutines, a future, a timer) until its next
frame, ~4 s later. CPython starts a young collection on the *net* count of new objects,
which barely moves while sockets replace their waiters one for one: young collections
came every 10-20 s, each scanning every socket's waiter (~100,000 objects, 30-70 ms
stops), and gen-1 ones took 250-300 ms.

So the pacer collects the young generation on a clock (`gc_young_interval_s`): it then
only holds that long's worth of objects, about a millisecond to scan. A slow collection
pushes the next tick back (up to `gc_max_interval_s`) so that collecting stays under
`gc_max_share` of the time. A tick is skipped
when CPython's own trigger collected since the last one (a burst of allocation, e.g.
sockets sending flat out): ticking on top of it cut the gateway's flat-out ceiling from
44,000 to 9,000-23,000 fixes/s. It counts its own
young collections to run gen 1 every `gc_gen1_threshold` of them and gen 2 every
`gc_gen2_threshold` gen-1 collections (minutes, then hours: each costs a stop that
grows with the live objects, 100-300 ms with 10,000 sockets). CPython's own trigger
stays armed (`gc_gen0_threshold`) for bursts of allocation between two ticks. What
exists once the process is up (modules, the app) is frozen out of every collection.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator

from aiohttp import web

from core.gateway_config import GatewayConfig
from gateway import appkeys as gateway_keys


class GcPacer:
    def __init__(self, config: GatewayConfig) -> None:
        self._config = config
        self._young_since_gen1 = 0
        self._gen1_since_gen2 = 0
        self._young_seen = -1
        self._handle: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._config.gc_young_interval_s > 0:
            self._handle = loop.call_later(self._config.gc_young_interval_s, self._tick, loop)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def next_generation(self) -> int:
        """The generation the next tick collects, and the counts advanced for it."""
        self._young_since_gen1 += 1
        if self._young_since_gen1 < self._config.gc_gen1_threshold:
            return 0
        self._young_since_gen1 = 0
        self._gen1_since_gen2 += 1
        if self._gen1_since_gen2 < self._config.gc_gen2_threshold:
            return 1
        self._gen1_since_gen2 = 0
        return 2

    def next_delay(self, collection_s: float) -> float:
        """The wait before the next tick: the interval, or longer after a slow collection,
        so that collecting takes at most `gc_max_share` of the loop's time. Sockets
        sending flat out keep thousands of young waiters alive whatever the interval:
        each collection then costs the same, and ticking every 30 ms cut the gateway's
        flat-out ceiling from 88,930 to 22,695 fixes/s. The wait is capped at
        `gc_max_interval_s`, so that it cannot grow without bound."""
        interval = self._config.gc_young_interval_s
        share = self._config.gc_max_share
        if share <= 0:
            return interval
        return max(interval, min(collection_s / share, self._config.gc_max_interval_s))

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        # Under a burst of allocation CPython's own trigger already collects the young
        # generation (often); a tick on top of it only costs. Tick when it stayed quiet.
        young = gc.get_stats()[0]["collections"]
        took = 0.0
        if young == self._young_seen:
            # CPU time: a collection preempted by another process did not cost more.
            started = time.thread_time()
            gc.collect(self.next_generation())
            took = time.thread_time() - started
            young = gc.get_stats()[0]["collections"]
        self._young_seen = young
        self._handle = loop.call_later(self.next_delay(took), self._tick, loop)


def take_over(config: GatewayConfig) -> tuple[int, int, int]:
    """Set the thresholds and freeze what exists now; returns the thresholds to restore.
    Also used by the load generators, which hold as many sockets as the server."""
    previous = gc.get_threshold()
    thresholds = (config.gc_gen0_threshold, config.gc_gen1_threshold, config.gc_gen2_threshold)
    if all(t > 0 for t in thresholds):
        gc.set_threshold(*thresholds)
    gc.freeze()
    return previous


async def gc_ctx(app: web.Application) -> AsyncIterator[None]:
    """Thresholds, freeze and pacer for the app's lifetime; restored at cleanup (tests
    share a process)."""
    config = app[gateway_keys.GATEWAY_CONFIG]
    previous = take_over(config)
    pacer = GcPacer(config)
    pacer.start(asyncio.get_running_loop())
    yield
    pacer.stop()
    gc.unfreeze()
    gc.set_threshold(*previous)
