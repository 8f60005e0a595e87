"""Client tracking of their artisan while a job is ASSIGNED, EN_ROUTE or ARRIVED.

Dispatch starts it on accept and stops it when the job leaves those states (through
the outbox: gateway/live_state.py); both are versioned scripts (gateway/lua.py). The fix batch script returns the tracking record of every tracked
artisan it updates, so forwarding costs no extra Redis round trip.

ETA: straight-line (haversine) distance × 1.3 detour factor at 25 km/h. 25 km/h is
a typical door-to-door urban driving speed in Paris traffic; 1.3 is the usual
ratio of road distance to straight-line distance in dense street grids. So
eta_s = d_m × 1.3 / 6.944 m/s, rounded to whole seconds.
"""

from __future__ import annotations

import uuid
from typing import Any

from redis.asyncio import Redis

from core import redis_keys
from gateway import live
from gateway.location import haversine_m

URBAN_SPEED_M_S = 25_000 / 3600
DETOUR_FACTOR = 1.3
# A forgotten tracking record must not live forever.
TRACKING_TTL_S = 24 * 3600


def eta_seconds(lat: float, lon: float, job_lat: float, job_lon: float) -> int:
    return round(haversine_m(lat, lon, job_lat, job_lon) * DETOUR_FACTOR / URBAN_SPEED_M_S)


async def start_tracking(
    redis: Redis,
    *,
    artisan_id: uuid.UUID | str,
    intervention_id: uuid.UUID | str,
    client_id: uuid.UUID | str,
    job_lat: float,
    job_lon: float,
    version: int = 0,
) -> bool:
    """From now on every accepted fix of `artisan_id` is sent to `client_id` as an
    `artisan.location` frame (with `eta_s` to the job at job_lat/job_lon). False when a
    change newer than `version` was applied already (see gateway/lua.py)."""
    args = start_args(
        artisan_id=artisan_id,
        intervention_id=intervention_id,
        client_id=client_id,
        job_lat=job_lat,
        job_lon=job_lon,
        version=version,
    )
    return bool(await live.TRACK_START(redis, args))


def start_args(
    *,
    artisan_id: uuid.UUID | str,
    intervention_id: uuid.UUID | str,
    client_id: uuid.UUID | str,
    job_lat: float,
    job_lon: float,
    version: int = 0,
) -> list[Any]:
    aid = str(artisan_id)
    return [
        redis_keys.live_artisan(aid),
        redis_keys.tracking(aid),
        version,
        str(intervention_id),
        str(client_id),
        repr(float(job_lat)),
        repr(float(job_lon)),
        TRACKING_TTL_S,
        redis_keys.LIVE_JOBS,
        aid,
    ]


async def stop_tracking(redis: Redis, *, artisan_id: uuid.UUID | str, version: int = 0) -> bool:
    """Stop forwarding the artisan's fixes (job ended, cancelled or IN_PROGRESS). False
    when a change newer than `version` was applied already."""
    return bool(await live.TRACK_STOP(redis, stop_args(artisan_id=artisan_id, version=version)))


def stop_args(*, artisan_id: uuid.UUID | str, version: int = 0) -> list[Any]:
    aid = str(artisan_id)
    return [redis_keys.live_artisan(aid), redis_keys.tracking(aid), version]


def location_frame(entry: list[str]) -> tuple[str, dict[str, Any]]:
    """(client id, frame) from one tracked entry returned by the fix batch script."""
    _artisan, intervention_id, client_id, job_lat, job_lon, lat, lon, ts, heading = entry
    flat, flon = float(lat), float(lon)
    eta = eta_seconds(flat, flon, float(job_lat), float(job_lon)) if job_lat and job_lon else None
    return client_id, {
        "type": "artisan.location",
        "intervention_id": intervention_id,
        "lat": flat,
        "lon": flon,
        "heading": float(heading) if heading else None,
        "ts": int(float(ts)),
        "eta_s": eta,
    }
