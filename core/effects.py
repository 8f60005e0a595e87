"""What a committed change must do afterwards, as typed values (see `core.outbox`).

Domain code records these while its statement or transaction runs; nothing here does
I/O. The live-state changes are applied by the gateway (`core.ports.LiveState`), the
payment steps by the payments context (`core.ports.PaymentSteps`).
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass

# `version`: the artisan's `live_version` written by the committed change (migration 011).
# The live state keeps the highest version it applied and ignores an older one, so changes
# applied out of order converge on the newest. 0 is unversioned (tests, tools): it always
# applies and leaves the kept version as it is.


@dataclass(frozen=True, slots=True)
class MarkBusy:
    """The artisan accepted a job: out of the live GEO sets and every index."""

    artisan_id: uuid.UUID
    version: int = 0


@dataclass(frozen=True, slots=True)
class MarkAvailable:
    """The artisan's job ended: ONLINE again if their last fix is recent, else OFFLINE."""

    artisan_id: uuid.UUID
    version: int = 0


@dataclass(frozen=True, slots=True)
class TrackingStart:
    """Forward the artisan's fixes to the job's client, with an ETA to the job."""

    artisan_id: uuid.UUID
    intervention_id: uuid.UUID
    client_id: uuid.UUID
    job_lat: float
    job_lon: float
    version: int = 0


@dataclass(frozen=True, slots=True)
class TrackingStop:
    """Stop forwarding the artisan's fixes (job ended, withdrawn or IN_PROGRESS)."""

    artisan_id: uuid.UUID
    version: int = 0


@dataclass(frozen=True, slots=True)
class ProfileChanged:
    """A profile field the live state and the indexes rank on; None: unchanged.
    `verified=False` forces the artisan OFFLINE."""

    artisan_id: uuid.UUID
    specialty: str | None = None
    rating: float | None = None
    verified: bool | None = None


LiveChange = MarkBusy | MarkAvailable | TrackingStart | TrackingStop | ProfileChanged


class PaymentEvent(enum.Enum):
    ASSIGNED = "assigned"  # hold the price for the job's current artisan
    COMPLETED = "completed"  # capture the hold
    CANCELLED = "cancelled"  # release the hold, or refund a capture


@dataclass(frozen=True, slots=True)
class PaymentStep:
    event: PaymentEvent
    intervention_id: uuid.UUID
