"""Every Redis key name, in one module. Nothing else formats a key.

All keys share the `zendo:` prefix so a deployment can share a Redis with others.
"""

from __future__ import annotations

PREFIX = "zendo:"


def rate_limit(scope: str, subject: str) -> str:
    """Sorted set of attempt timestamps for one sliding window."""
    return f"{PREFIX}rl:{scope}:{subject}"


# --- gateway: live artisan state (gateway/live.py, gateway/lua.py) ---------------------
# Lua scripts receive the *_PREFIX values as arguments and append a specialty, an H3
# cell or an id; the prefixes are defined here so key names still live in one module.
LIVE_ARTISAN_PREFIX = f"{PREFIX}live:a:"
GEO_ONLINE_PREFIX = f"{PREFIX}live:geo:"
H3_BUCKET_PREFIX = f"{PREFIX}live:h3:"
# Set of every artisan id that has a live hash (the mirror rebuilds from it).
LIVE_IDS = f"{PREFIX}live:ids"
# Set of artisan ids the scripts made BUSY or tracked: a superset (the reconciler drops
# those that are neither), so most reconciler passes read the jobs, not the fleet.
LIVE_JOBS = f"{PREFIX}live:jobs"
# Set of artisan ids whose position/status changed since the last write-behind.
LIVE_DIRTY = f"{PREFIX}live:dirty"
# Stream of artisan events (fix, status, profile) that every ArtisanIndex mirror tails.
ARTISAN_EVENTS = f"{PREFIX}live:events"
# Sorted set artisan id -> epoch ms at which they go OFFLINE unless a socket refreshes it.
PRESENCE_LEASES = f"{PREFIX}live:leases"
# Random value written once; when it vanishes, Redis lost its data (restart without
# persistence) and gateways re-hydrate the live state of their connected artisans.
LIVE_EPOCH = f"{PREFIX}live:epoch"
NODE_CHANNEL_PREFIX = f"{PREFIX}node:"
# Sorted set artisan id -> epoch ms of their last fix, for ONLINE artisans only: the stale
# sweep turns those without a recent fix OFFLINE (gateway/presence.py).
LIVE_FRESH = f"{PREFIX}live:fresh"
# Prefixes of `tracking(...)` and `user_nodes(...)`, passed to batch Lua scripts.
TRACKING_PREFIX = f"{PREFIX}trk:"
# String: the node id of the process that runs the live-state reconciler now (with a TTL).
RECONCILER_LEADER = f"{PREFIX}live:reconciler"
USER_NODES_PREFIX = f"{PREFIX}un:"


def live_artisan(artisan_id: str) -> str:
    """Hash: lat, lon, ts, h3, current_status, specialty, level, rating, verified, avail."""
    return f"{LIVE_ARTISAN_PREFIX}{artisan_id}"


def geo_online(specialty: str) -> str:
    """GEO set of the ONLINE artisans of one specialty."""
    return f"{GEO_ONLINE_PREFIX}{specialty}"


def h3_bucket(cell: str) -> str:
    """Set of the ONLINE artisans whose last fix is in this H3 cell (res 8)."""
    return f"{H3_BUCKET_PREFIX}{cell}"


def tracking(artisan_id: str) -> str:
    """Hash: intervention_id, client_id, job_lat, job_lon while a client tracks the artisan."""
    return f"{TRACKING_PREFIX}{artisan_id}"


def user_nodes(user_id: str) -> str:
    """Sorted set node id -> expiry epoch ms: which gateway processes hold the user's sockets."""
    return f"{USER_NODES_PREFIX}{user_id}"


def node_channel(node_id: str) -> str:
    """Pub/sub channel of one gateway process (frames for users whose sockets it holds)."""
    return f"{NODE_CHANNEL_PREFIX}{node_id}"


# Sorted set session id -> expiry (epoch ms) of the revoked sessions, and the channel
# each revocation is published on: every process keeps a copy (core/sessions.py).
REVOKED_SESSIONS = f"{PREFIX}revoked:sessions"
REVOCATIONS_CHANNEL = f"{PREFIX}revoked:channel"


def revoked_session(session_id: str) -> str:
    """String, set at logout (or refresh-token reuse) for as long as the session's
    access tokens could still be valid: those tokens are refused (core/sessions.py)."""
    return f"{PREFIX}revoked:sid:{session_id}"


def user_sockets(user_id: str) -> str:
    """Sorted set `node|socket` -> opened epoch ms: a user's open sockets, for the cap of
    ZENDO_MAX_SOCKETS_PER_USER (gateway/socket_cap.py)."""
    return f"{PREFIX}ws:u:{user_id}"
