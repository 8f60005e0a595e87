"""Gateway tunables. The defaults are the production values; tests pass shorter
intervals in-process (`settings.gateway`, the `GATEWAY_CONFIG` app key).

Only three are operator settings, read by `Settings.from_env`: `ZENDO_GW_HEARTBEAT_S`,
`ZENDO_GW_SEND_QUEUE_MAX` and `ZENDO_GW_SHUTDOWN_CLOSE_S` (README, Configuration). The
others are not read from the environment. `Settings` keeps the contract's values (auth
timeout, offline grace).
"""

from __future__ import annotations

from dataclasses import dataclass

# "Recent fix": ONLINE needs a fix at most this old. One value for the presence request
# and the stale sweep (`GatewayConfig.recent_fix_s`) and the end of a job
# (`gateway.live.RECENT_FIX_MS`, passed to the Lua scripts).
RECENT_FIX_S = 120.0


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
    # their next fix). See RECENT_FIX_S.
    recent_fix_s: float = RECENT_FIX_S
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
