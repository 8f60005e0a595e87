"""Access tokens (JWT HS256) and opaque refresh tokens.

Only HS256 is accepted, `typ` must be "access", and `iss`/`aud` are pinned, so
neither alg=none, a foreign key, nor a refresh token can pass as an access token.

A token is checked first as one of ours, byte for byte (`_verify_own`): the exact
header `issue_access_token` writes, the signature's canonical encoding, the claims
this module writes and nothing unusual. PyJWT 2.15's general decode costs 170-260 us
on a slow hour of this project's machine (a third of it checking the base64 alphabet
one character at a time in a generator, a sixth screening the key for PEM and SSH
forms), this check 35-70 us the same hour: it is paid on every WebSocket handshake and
on each worker's first request with a token. Whatever the check does not accept goes
to PyJWT, which decides, so it only ever accepts tokens PyJWT accepts with the same
claims (tests/core/test_tokens.py checks that against PyJWT).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import operator
import secrets
import time
import uuid
from typing import Any

import jwt
import orjson

from core.errors import Unauthorized
from core.principal import ROLES, Principal

ALGORITHM = "HS256"
ISSUER = "zendo"
AUDIENCE = "zendo-api"
# Clocks of the issuing and the verifying process may disagree a little: a token is
# accepted up to this many seconds before its `iat`/`nbf`. Expiry stays exact.
CLOCK_SKEW_S = 30

# Verified tokens, by (secret, token). An app sends the same token with every request
# until it renews it, and even `_verify_own` costs tens of microseconds. Only successes
# are kept, and expiry is checked again on every hit, so a cached token is accepted
# exactly when a fresh decode would accept it. Oldest first out.
_VERIFIED_MAX = 32_768
_verified: dict[tuple[str, str], Principal] = {}

_REQUIRED = ("sub", "role", "typ", "iat", "exp", "jti", "iss", "aud")
_OWN_CLAIMS = frozenset((*_REQUIRED, "sid"))
_required = operator.itemgetter(*_REQUIRED)
# The header segment PyJWT writes for `issue_access_token` (sorted keys, no spaces).
OWN_HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()


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
        principal = _verify_own(secret, token) or _decode_access_token(secret, token)
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
            options={"require": list(_REQUIRED)},
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
        return _principal(claims, sid)
    except ValueError as exc:
        raise Unauthorized("Invalid access token", code="invalid_token") from exc


def _principal(claims: dict[str, Any], sid: object) -> Principal:
    """Raises ValueError for a `sub` or `sid` that is not a UUID."""
    return Principal(
        user_id=uuid.UUID(str(claims["sub"])),
        role=str(claims["role"]),
        token_id=str(claims["jti"]),
        expires_at=int(claims["exp"]),
        session_id=None if sid is None else str(uuid.UUID(str(sid))),
    )


def _verify_own(secret: str, token: str) -> Principal | None:
    """The principal of a valid token exactly as `issue_access_token` writes them; None
    for anything else, valid or not (PyJWT decides those: module docstring)."""
    header, _, rest = token.partition(".")
    payload, dot, signature = rest.partition(".")
    if header != OWN_HEADER or not dot or not token.isascii():
        return None
    mac = hmac.digest(secret.encode(), f"{header}.{payload}".encode(), "sha256")
    if not hmac.compare_digest(base64.urlsafe_b64encode(mac).rstrip(b"="), signature.encode()):
        return None
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = orjson.loads(raw)
    except (ValueError, orjson.JSONDecodeError):
        return None
    # Canonical only: the base64 that decodes to these bytes, and nothing beyond our claims.
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != payload.encode():
        return None
    if not isinstance(claims, dict) or not claims.keys() <= _OWN_CLAIMS:
        return None
    try:
        sub, role, typ, iat, exp, jti, iss, aud = _required(claims)
    except KeyError:
        return None
    sid = claims.get("sid")
    now = time.time()
    if (
        type(iat) is not int
        or type(exp) is not int
        or iat > now + CLOCK_SKEW_S
        or exp <= now
        or type(sub) is not str
        or type(jti) is not str
        or type(role) is not str
        or role not in ROLES
        or (iss, aud, typ) != (ISSUER, AUDIENCE, "access")
        or not (sid is None or type(sid) is str)
    ):
        return None
    try:
        return _principal(claims, sid)
    except ValueError:
        return None


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> bytes:
    """Refresh tokens are high-entropy, so a plain SHA-256 is enough to store them."""
    return hashlib.sha256(token.encode()).digest()
