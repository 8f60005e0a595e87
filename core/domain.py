"""Domain constants, in one place. PostgreSQL's CHECK constraints (sql/) say the same,
and tests/core/test_domain.py keeps the two in step.

The artisan attributes the matching core ranks on (specialties, levels, presence
statuses, the Earth radius of the contract's haversine) are defined by `matching`,
the lowest layer, and named here for everyone else.
"""

from __future__ import annotations

from typing import Final

from matching.codes import EARTH_RADIUS_KM, LEVELS, SPECIALTIES
from matching.codes import STATUSES as PRESENCE_STATUSES

__all__ = [
    "DOCUMENT_KINDS",
    "EARTH_RADIUS_KM",
    "INTERVENTION_STATUSES",
    "LEVELS",
    "OFFER_STATUSES",
    "OPEN_INTERVENTION_STATUSES",
    "PRESENCE_STATUSES",
    "ROLES",
    "SPECIALTIES",
    "VERIFICATION_STATUSES",
]

ROLES: Final = ("CLIENT", "ARTISAN", "ADMIN")
# An artisan's verification by an admin (artisans.status).
VERIFICATION_STATUSES: Final = ("PENDING", "VERIFIED", "REJECTED")
# An intervention's lifecycle; the transitions are dispatch/interventions/statemachine.py.
INTERVENTION_STATUSES: Final = (
    "SEARCHING",
    "ASSIGNED",
    "EN_ROUTE",
    "ARRIVED",
    "IN_PROGRESS",
    "COMPLETED",
    "CANCELLED",
    "UNFULFILLED",
)
# HELD: an in-time accept waiting for best_accept's award (dispatch/policies/).
OFFER_STATUSES: Final = (
    "PENDING",
    "HELD",
    "ACCEPTED",
    "DECLINED",
    "EXPIRED",
    "TAKEN",
    "REVOKED",
)
DOCUMENT_KINDS: Final = ("ID_CARD", "KBIS", "INSURANCE")
# The statuses of a job not yet over (the ops console's open jobs).
OPEN_INTERVENTION_STATUSES: Final = ("SEARCHING", "ASSIGNED", "EN_ROUTE", "ARRIVED", "IN_PROGRESS")
