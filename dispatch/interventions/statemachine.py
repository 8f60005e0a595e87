"""The intervention lifecycle (CONTRACT §4), in one place.

Every status change in the code base goes through `repo.transition_logged`,
which asks `check_transition` first and then writes with a conditional UPDATE (`... WHERE status = $expected`), so a lost
update shows up as a 409 rather than a silent overwrite.
"""

from __future__ import annotations

from typing import Final

from core.domain import INTERVENTION_STATUSES
from core.errors import Conflict

SEARCHING: Final = "SEARCHING"
ASSIGNED: Final = "ASSIGNED"
EN_ROUTE: Final = "EN_ROUTE"
ARRIVED: Final = "ARRIVED"
IN_PROGRESS: Final = "IN_PROGRESS"
COMPLETED: Final = "COMPLETED"
CANCELLED: Final = "CANCELLED"
UNFULFILLED: Final = "UNFULFILLED"

STATUSES: tuple[str, ...] = INTERVENTION_STATUSES
assert set(STATUSES) == {
    SEARCHING,
    ASSIGNED,
    EN_ROUTE,
    ARRIVED,
    IN_PROGRESS,
    COMPLETED,
    CANCELLED,
    UNFULFILLED,
}
# An artisan holding one of these is BUSY (mirrors interventions_one_active_per_artisan).
ACTIVE: frozenset[str] = frozenset({ASSIGNED, EN_ROUTE, ARRIVED, IN_PROGRESS})
TERMINAL: frozenset[str] = frozenset({COMPLETED, CANCELLED, UNFULFILLED})
# While the artisan travels and waits, the client sees their position.
TRACKED: frozenset[str] = frozenset({ASSIGNED, EN_ROUTE, ARRIVED})
# Targets the assigned artisan may ask for through POST /interventions/{id}/status.
ARTISAN_PROGRESS: frozenset[str] = frozenset({EN_ROUTE, ARRIVED, IN_PROGRESS, COMPLETED})

_CLIENT_SIDE = frozenset({"CLIENT", "ADMIN"})
_ARTISAN = frozenset({"ARTISAN"})

# (from, to) -> roles allowed to make that move. Anything absent is a 409.
TRANSITIONS: dict[tuple[str, str], frozenset[str]] = {
    (SEARCHING, ASSIGNED): _ARTISAN,  # an accepted offer
    (SEARCHING, UNFULFILLED): frozenset({"SYSTEM"}),
    (SEARCHING, CANCELLED): _CLIENT_SIDE,
    (ASSIGNED, EN_ROUTE): _ARTISAN,
    (EN_ROUTE, ARRIVED): _ARTISAN,
    (ARRIVED, IN_PROGRESS): _ARTISAN,  # needs the client's start code
    (IN_PROGRESS, COMPLETED): _ARTISAN,
    # The client may cancel until the work starts.
    (ASSIGNED, CANCELLED): _CLIENT_SIDE,
    (EN_ROUTE, CANCELLED): _CLIENT_SIDE,
    (ARRIVED, CANCELLED): _CLIENT_SIDE,
    # An artisan who withdraws before starting puts the job back on the market.
    (ASSIGNED, SEARCHING): _ARTISAN,
    (EN_ROUTE, SEARCHING): _ARTISAN,
    (ARRIVED, SEARCHING): _ARTISAN,
}


# The assigned artisan's own moves each have exactly one origin: target -> from.
ARTISAN_PREVIOUS: dict[str, str] = {
    to: frm
    for (frm, to), roles in TRANSITIONS.items()
    if to in ARTISAN_PROGRESS and "ARTISAN" in roles
}
assert len(ARTISAN_PREVIOUS) == len(ARTISAN_PROGRESS)


class IllegalTransition(Conflict):
    code = "illegal_transition"


def is_allowed(current: str, target: str, role: str) -> bool:
    return role in TRANSITIONS.get((current, target), frozenset())


def check_transition(current: str, target: str, role: str) -> None:
    """Raise IllegalTransition (409) unless `role` may move a job from `current` to `target`."""
    if not is_allowed(current, target, role):
        raise IllegalTransition(f"An intervention cannot go from {current} to {target} ({role})")
