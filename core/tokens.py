"""Access tokens (JWT HS256) and opaque refresh tokens.

Only HS256 is accepted, `typ` must be "access", and `iss`/`aud` are pinned, so
neither alg=none, a foreign key, nor a refresh token can pass as an access token.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid

import jwt

from core.errors import Unauthorized
from core.principal import ROLES, Principal

ALGORITHM = "HS256"
ISSUER = "zendo"
AUDIENCE = "zendo-api"
# Clocks of the issuing and the verifying process may disagree a little: a token is
# accepted up to this many seconds before its `iat`/`nbf`. Expiry stays exact.
CLOCK_SKEW_S = 30

# Verified tokens, by (secret, token). An app sends the same token with every request
# until it renews it, and PyJWT's decode costs about 100 us: some 5 % of a core at 350
# requests/s. Only successes are kept, and expiry is checked again on every hit, so a
# cached token is accepted exactly when a fresh decode would accept it. Oldest first out.
_VERIFIED_MAX = 32_768
_verified: dict[tuple[str, str], Principal] = {}


def issue_access_token(
    secret: str,
    *,
    user_id: uuid.UUID,
    role: str,
    ttl_s: int,
    session_id: uuid.UUID | None = None,
) -> str:
    """`session_id` (claim `sid`): the refresh family the token was issued for; logging
    that session out revokes the token (core/sessions.py). Seeded and benchmark tokens
    have none."""
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": str(user_id),
        "role": role,
        "typ": "access",
        "iat": now,
        "exp": now + ttl_s,
        "jti": secrets.token_hex(16),
        "iss": ISSUER,
        "aud": AUDIENCE,
    }
    if session_id is not None:
        claims["sid"] = str(session_id)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_access_token(secret: str, token: str) -> Principal:
    key = (secret, token)
    principal = _verified.get(key)
    if principal is None:
        principal = _decode_access_token(secret, token)
        while len(_verified) >= _VERIFIED_MAX:
            del _verified[next(iter(_verified))]
        _verified[key] = principal
    elif principal.expires_at <= time.time():  # PyJWT's rule: expired once exp <= now
        del _verified[key]
        raise Unauthorized("Access token expired", code="token_expired")
    return principal


def _decode_access_token(secret: str, token: str) -> Principal:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=CLOCK_SKEW_S,
            options={"require": ["sub", "role", "typ", "iat", "exp", "jti", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("Access token expired", code="token_expired") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("Invalid access token", code="invalid_token") from exc
    # The leeway above is for iat/nbf only: an expired token is refused at once.
    if int(claims["exp"]) <= time.time():
        raise Unauthorized("Access token expired", code="token_expired")
    sid = claims.get("sid")
    if claims.get("typ") != "access" or claims.get("role") not in ROLES:
        raise Unauthorized("Invalid access token", code="invalid_token")
    try:
        user_id = uuid.UUID(str(claims["sub"]))
        session_id = None if sid is None else str(uuid.UUID(str(sid)))
    except ValueError as exc:
        raise Unauthorized("Invalid access token", code="invalid_token") from exc
    return Principal(
        user_id=user_id,
        role=str(claims["role"]),
        token_id=str(claims["jti"]),
        expires_at=int(claims["exp"]),
        session_id=session_id,
    )


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> bytes:
    """Refresh tokens are high-entropy, so a plain SHA-256 is enough to store them."""
    return hashlib.sha256(token.encode()).digest()
