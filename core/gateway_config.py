"""Gateway tunables. Defaults suit production; tests shorten the intervals.

Read from `ZENDO_GW_*` environment variables so subprocess servers in tests can
be tuned too; `Settings` keeps the contract's variables (auth timeout, grace).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    # Frames waiting for one socket; a client that lets more pile up is disconnected.
    send_queue_max: int = 256
    # Bytes buffered in the transport before a write waits for the peer (aiohttp drain).
    writer_limit: int = 32 * 1024
    heartbeat_s: float = 20.0
    max_msg_size: int = 16 * 1024
    # A client sending this many bad frames within the window is closed with 1008.
    junk_limit: int = 10
    junk_window_s: float = 10.0
    # Each process re-announces its users (user -> node registry) this often...
    registry_refresh_s: float = 10.0
    # ...and an entry not refreshed within this TTL is considered gone (process died).
    registry_ttl_s: float = 30.0
    # ONLINE needs a fix at most this old: a presence ONLINE request is refused without
    # one, and the stale sweep turns ONLINE artisans whose fixes stopped OFFLINE (until
    # their next fix). Same default as live.RECENT_FIX_MS.
    recent_fix_s: float = 120.0
    # How often the presence sweeper runs (expired leases, stale fixes).
    sweep_interval_s: float = 1.0
    writebehind_interval_s: float = 2.0
    # PostgreSQL keeps the last position at this resolution (gateway/writebehind.py):
    # rewritten after a move of over min_move_m, or when the last write is max_age_s old.
    writebehind_min_move_m: float = 25.0
    writebehind_max_age_s: float = 60.0
    # Fixes per Lua call (bounds the time one script holds Redis, ~5 µs per fix, and the
    # packing time on our loop); a flush is still one pipeline (one round trip).
    lua_chunk: int = 1000
    # Flushes in flight at once: the next batch is packed while Redis applies one.
    max_inflight_flushes: int = 2
    # At most one flush per this many seconds (a fix waits at most that long to reach
    # Redis and the index). With 2,500 fixes/s a flush went out every 5 ms with a dozen
    # fixes; each one costs a Redis call, a stream event and a mirror read on every node.
    flush_linger_s: float = 0.02
    # Graceful shutdown: every socket gets a 1001 close frame, concurrently; those not
    # closed within this time are aborted. Then one batched registry cleanup.
    shutdown_close_s: float = 2.0
    # Garbage collection (gateway/gcpacer.py): young collections every
    # gc_young_interval_s (0: only CPython's own trigger); gen 1 every gc_gen1_threshold
    # of them (5 min), gen 2 every gc_gen2_threshold gen-1 ones (100 min). CPython's own
    # trigger keeps gc_gen0_threshold for bursts (any threshold 0: Python's defaults).
    # Every 30 ms rather than 100: the same collector CPU (a pause scans what the
    # interval allocated), in pauses a third as long (p99 4.6-7 ms against 10-22 ms
    # under the dispatch benchmark's load).
    gc_young_interval_s: float = 0.03
    # ... but after a collection of d seconds the next one waits at least d / share,
    # and at most gc_max_interval_s. Under the dispatch benchmark (10,000 sockets, a
    # 2-core machine) the young generation grows with the wait, so an unbounded wait
    # fed on itself: young pauses p50 33-60 / p99 98-184 ms with no cap or a 1 s one,
    # p50 16 / p99 46 ms with 100 ms (p50 4 / p99 21 ms with no back-off at all, which
    # costs the gateway's flat-out ceiling: see next_delay).
    gc_max_share: float = 0.05
    gc_max_interval_s: float = 0.1
    gc_gen0_threshold: int = 10_000
    gc_gen1_threshold: int = 10_000
    gc_gen2_threshold: int = 20
    # Socket actions (presence changes, offer answers behind them) waiting on one socket
    # before further ones are refused; an offer answer with nothing pending runs at once.
    max_pending_actions: int = 8

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> GatewayConfig:
        """`ZENDO_GW_<FIELD>` overrides; ValueError names the variable and the value."""
        env = dict(os.environ if env is None else env)
        changes: dict[str, Any] = {}
        for f in fields(cls):
            name = f"ZENDO_GW_{f.name.upper()}"
            raw = env.get(name)
            if not raw:
                continue
            try:
                value: float = int(raw) if f.type == "int" else float(raw)
            except ValueError:
                kind = "an integer" if f.type == "int" else "a number"
                raise ValueError(f"{name} must be {kind}, got {raw!r}") from None
            if not 0 <= value < math.inf:
                raise ValueError(f"{name} must be a finite number >= 0, got {raw!r}")
            changes[f.name] = value
        return replace(cls(), **changes)
