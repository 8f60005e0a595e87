"""Tell the gateway's live state about profile changes (verification, specialty).

PostgreSQL is the source of truth; this only keeps the live (Redis) view in step.
It never raises into the caller: a failure is logged and the next presence/profile
refresh of the gateway corrects it.
"""

from __future__ import annotations

import importlib
import logging
import uuid
from typing import Any

from redis.asyncio import Redis

log = logging.getLogger("zendo.artisans")


async def update_live_profile(redis: Redis, artisan_id: uuid.UUID, **changes: Any) -> bool:
    """Call `gateway.live.update_profile(redis, artisan_id, **changes)` when it exists."""
    try:
        live = importlib.import_module("gateway.live")
        update_profile = live.update_profile
    except (ImportError, AttributeError):
        log.warning("gateway.live.update_profile is not available; live state not updated")
        return False
    try:
        await update_profile(redis, artisan_id, **changes)
    except Exception:
        log.exception("updating live profile of %s failed", artisan_id)
        return False
    return True
