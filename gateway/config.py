"""Gateway tunables. Defaults suit production; tests shorten the intervals.

Read from `ZENDO_GW_*` environment variables so subprocess servers in tests can
be tuned too; `Settings` keeps the contract's variables (auth timeout, grace).
"""

from __future__ import annotations

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
    # A presence ONLINE request needs a fix at most this old.
    recent_fix_s: float = 300.0
    writebehind_interval_s: float = 2.0
    # Fixes per Lua call; a flush is still one pipeline (one round trip).
    lua_chunk: int = 500
    # Pending offer actions per socket before further ones are refused.
    max_pending_actions: int = 8

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> GatewayConfig:
        env = dict(os.environ if env is None else env)
        changes: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"ZENDO_GW_{f.name.upper()}")
            if raw:
                changes[f.name] = int(raw) if f.type == "int" else float(raw)
        return replace(cls(), **changes)
