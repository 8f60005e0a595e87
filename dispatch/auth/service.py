"""Auth use cases: register, login, refresh (rotation with reuse detection), logout, me.

Services raise domain exceptions; the error middleware maps them to problem+json.
Tokens and passwords are never logged.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web
from redis.exceptions import RedisError

from core import appkeys
from core.db import transaction
from core.errors import (
    Conflict,
    InvalidCredentials,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
)
from core.settings import Settings
from core.tokens import hash_refresh_token, issue_access_token, new_refresh_token
from dispatch import appkeys as dispatch_keys
from dispatch.auth import passwords, repo, schemas


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What a successful register/login/refresh hands out."""

    access_token: str
    refresh_token: str
    user: dict[str, Any]
    # Seconds the refresh token (and its session: 7 days absolute) has left.
    refresh_expires_in: int

    def body(self, settings: Settings, *, include_refresh_token: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": settings.access_token_ttl_s,
            "refresh_token": self.refresh_token,
            "refresh_expires_in": self.refresh_expires_in,
            "user": self.user,
        }
        if not include_refresh_token:  # web clients get it in the cookie only
            del body["refresh_token"]
        return body


async def _issue_refresh_token(
    conn: asyncpg.Connection, settings: Settings, *, user_id: uuid.UUID, family_id: uuid.UUID
) -> tuple[str, int]:
    """A new token of the family and its remaining lifetime (seconds)."""
    token = new_refresh_token()
    remaining = await repo.insert_refresh_token(
        conn,
        token_hash=hash_refresh_token(token),
        family_id=family_id,
        user_id=user_id,
        ttl_s=settings.refresh_token_ttl_s,
    )
    return token, remaining


async def _grant(
    conn: asyncpg.Connection,
    settings: Settings,
    *,
    user_id: uuid.UUID,
    role: str,
    family_id: uuid.UUID,
) -> TokenGrant:
    refresh, remaining = await _issue_refresh_token(
        conn, settings, user_id=user_id, family_id=family_id
    )
    user = await repo.fetch_user_view(conn, user_id=user_id)
    assert user is not None  # same transaction that created, found or rotated the user
    access = issue_access_token(
        settings.jwt_secret,
        user_id=user_id,
        role=role,
        ttl_s=settings.access_token_ttl_s,
        session_id=family_id,
    )
    return TokenGrant(
        access_token=access, refresh_token=refresh, user=user, refresh_expires_in=remaining
    )


async def _grant_new_family(
    conn: asyncpg.Connection, settings: Settings, *, user_id: uuid.UUID, role: str
) -> TokenGrant:
    family_id = await repo.create_family(conn, user_id=user_id)
    return await _grant(conn, settings, user_id=user_id, role=role, family_id=family_id)


async def register(
    app: web.Application, body: schemas.RegisterRequest, *, client_ip: str
) -> TokenGrant:
    pool, settings = app[appkeys.PG_POOL], app[appkeys.SETTINGS]
    # Counted before validation and hashing: each attempt may cost a bcrypt on the
    # shared pool. Without Redis the limit cannot be enforced: fail closed (503).
    try:
        await app[dispatch_keys.REGISTRATION_LIMITER].hit(f"ip:{client_ip}")
    except RedisError as exc:
        raise ServiceUnavailable("Registration is unavailable; try again shortly") from exc
    schemas.validate_register(body)
    email = schemas.normalise_email(body.email)
    # Hash before taking a connection: bcrypt takes tens of milliseconds.
    password_hash = await passwords.hash_password(body.password, settings.bcrypt_rounds)
    try:
        # User, artisan profile and the first refresh family commit together.
        async with transaction(pool) as conn:
            user_id = await repo.insert_user(
                conn,
                email=email,
                password_hash=password_hash,
                role=body.role,
                phone_number=body.phone_number,
            )
            if body.role == "ARTISAN":
                assert body.specialty is not None  # checked by validate_register
                await repo.insert_artisan(conn, user_id=user_id, specialty=body.specialty)
            return await _grant_new_family(conn, settings, user_id=user_id, role=body.role)
    except asyncpg.UniqueViolationError as exc:
        raise Conflict("An account with this email already exists", code="email_taken") from exc
    except asyncpg.CheckViolationError as exc:  # a value the validators let through
        raise ValidationFailed(detail="A field has an invalid value") from exc


def _account_subject(email: str) -> str:
    # Hashed so that Redis keys never hold an email address.
    return "acct:" + hashlib.sha256(email.encode()).hexdigest()[:32]


async def login(app: web.Application, body: schemas.LoginRequest, *, client_ip: str) -> TokenGrant:
    pool, settings = app[appkeys.PG_POOL], app[appkeys.SETTINGS]
    limiter = app[dispatch_keys.LOGIN_LIMITER]
    schemas.validate_login(body)
    email = schemas.normalise_email(body.email)
    # Every attempt counts, successful or not, per IP and per account. Without
    # Redis the limit cannot be enforced, so login fails closed (503).
    try:
        await limiter.hit(f"ip:{client_ip}", _account_subject(email))
    except RedisError as exc:
        raise ServiceUnavailable("Login is unavailable; try again shortly") from exc
    async with pool.acquire() as conn:
        creds = await repo.find_credentials(conn, email=email)
    if creds is None:
        await passwords.burn_verification_time(body.password, settings.bcrypt_rounds)
        raise InvalidCredentials("Invalid email or password")
    if not await passwords.verify_password(body.password, creds["password_hash"]):
        raise InvalidCredentials("Invalid email or password")
    async with transaction(pool) as conn:
        return await _grant_new_family(conn, settings, user_id=creds["id"], role=creds["role"])


_INVALID_REFRESH = "Invalid refresh token"


async def refresh(app: web.Application, token: str) -> TokenGrant:
    """Rotate `token`: it becomes used, and a new token joins its family.

    Presenting a token that was already used revokes its whole family (the newer
    tokens and their access tokens too): either the client or a thief holds a copy, and
    we cannot tell which. Two concurrent refreshes of one token: the row lock lets one
    win; the others find it rotated less than `refresh_reuse_grace_s` ago and are
    refused without revoking, so the winner's session lives on.
    """
    pool, settings = app[appkeys.PG_POOL], app[appkeys.SETTINGS]
    token_hash = hash_refresh_token(token)
    revoked: asyncpg.Record | None = None
    async with transaction(pool) as conn:
        row = await repo.consume_refresh_token(
            conn, token_hash=token_hash, ttl_s=settings.refresh_token_ttl_s
        )
        if row is not None:
            return await _grant(
                conn,
                settings,
                user_id=row["user_id"],
                role=row["role"],
                family_id=row["family_id"],
            )
        known = await repo.find_refresh_token(
            conn, token_hash=token_hash, grace_s=settings.refresh_reuse_grace_s
        )
        if known is not None and known["used_at"] is not None and known["revoked_at"] is None:
            if known["just_used"]:
                raise Unauthorized(
                    "This refresh token was just rotated by another request; use its successor",
                    code="refresh_token_rotated",
                )
            await repo.revoke_family(conn, family_id=known["family_id"], reason="REUSE")
            revoked = known
    # Raised after the commit, so the revocation above is not rolled back.
    if revoked is not None:
        await _end_session(app, revoked["family_id"], user_id=revoked["user_id"])
        raise Unauthorized(
            "Refresh token already used; the session was revoked", code="refresh_token_reused"
        )
    raise Unauthorized(_INVALID_REFRESH, code="invalid_refresh_token")


async def logout(app: web.Application, token: str) -> None:
    """Kill the token's family, the access tokens it was given and its sockets. Unknown
    or already-dead tokens are a no-op (idempotent)."""
    async with transaction(app[appkeys.PG_POOL]) as conn:
        known = await repo.find_refresh_token(conn, token_hash=hash_refresh_token(token))
        if known is not None:
            await repo.revoke_family(conn, family_id=known["family_id"], reason="LOGOUT")
    if known is not None:
        await _end_session(app, known["family_id"], user_id=known["user_id"])


async def _end_session(app: web.Application, family_id: uuid.UUID, *, user_id: uuid.UUID) -> None:
    """After the family's revocation committed: its access tokens are refused from now on
    (fails with 503 when Redis is down: the client retries), and its sockets are closed
    with 4401 on every process."""
    settings = app[appkeys.SETTINGS]
    await app[appkeys.SESSIONS].revoke(
        str(family_id), access_token_ttl_s=settings.access_token_ttl_s
    )
    notifier = app.get(appkeys.NOTIFIER)
    if notifier is not None:
        await notifier.close_session(user_id, str(family_id))


async def me(app: web.Application, user_id: uuid.UUID) -> dict[str, Any]:
    async with app[appkeys.PG_POOL].acquire() as conn:
        user = await repo.fetch_user_view(conn, user_id=user_id)
    if user is None:
        raise Unauthorized("This account no longer exists", code="invalid_token")
    return user
