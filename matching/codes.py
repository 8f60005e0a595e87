"""Enumerations shared by the matching core (codes are stable small ints)."""

from __future__ import annotations

from typing import Final

SPECIALTIES: Final = (
    "PLUMBER",
    "ELECTRICIAN",
    "LOCKSMITH",
    "HEATING",
    "GLAZIER",
    "APPLIANCE_REPAIR",
)
LEVELS: Final = ("STANDARD", "PRO_PLUS", "ELITE")
STATUSES: Final = ("ONLINE", "BUSY", "OFFLINE")

SPECIALTY_CODE: Final[dict[str, int]] = {s: i for i, s in enumerate(SPECIALTIES)}
LEVEL_CODE: Final[dict[str, int]] = {s: i for i, s in enumerate(LEVELS)}
STATUS_CODE: Final[dict[str, int]] = {s: i for i, s in enumerate(STATUSES)}

ONLINE: Final = 0

#: Mean Earth radius used by the contract's haversine distance (km).
EARTH_RADIUS_KM: Final = 6371.0088

#: Ratings accepted by the index (inclusive bounds).
RATING_MIN: Final = 0.0
RATING_MAX: Final = 5.0


def specialty_code(specialty: object) -> int:
    """Return the code of ``specialty`` or raise ``ValueError``."""
    try:
        code = SPECIALTY_CODE.get(specialty)  # type: ignore[call-overload]
    except TypeError:
        code = None
    if code is None:
        raise ValueError(f"unknown specialty {specialty!r}; expected one of {SPECIALTIES}")
    return int(code)


def level_code(level: object) -> int:
    """Return the code of ``level`` or raise ``ValueError``."""
    try:
        code = LEVEL_CODE.get(level)  # type: ignore[call-overload]
    except TypeError:
        code = None
    if code is None:
        raise ValueError(f"unknown level {level!r}; expected one of {LEVELS}")
    return int(code)


def status_code(status: object) -> int:
    """Return the code of ``status`` or raise ``ValueError``."""
    try:
        code = STATUS_CODE.get(status)  # type: ignore[call-overload]
    except TypeError:
        code = None
    if code is None:
        raise ValueError(f"unknown status {status!r}; expected one of {STATUSES}")
    return int(code)
