"""Who is calling: the verified claims of an access token."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from core.domain import ROLES as DOMAIN_ROLES

ROLES: tuple[str, ...] = DOMAIN_ROLES


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: uuid.UUID
    role: str
    token_id: str
    expires_at: int  # epoch seconds
    # The refresh family (login session) the token belongs to; None for a token minted
    # without one (tests, the gateway benchmarks): it cannot be revoked before it expires.
    session_id: str | None = None
