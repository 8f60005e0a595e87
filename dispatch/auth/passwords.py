"""Password hashing: bcrypt over a SHA-256 pre-hash, always off the event loop.

Scheme (stored as `$sha256b64$` + the bcrypt string):

    bcrypt(base64(sha256(utf8(password))), rounds=ZENDO_BCRYPT_ROUNDS)

bcrypt only reads the first 72 bytes of its input (bcrypt 5 raises beyond that),
and passwords may be 128 characters, i.e. up to 512 UTF-8 bytes. Pre-hashing
makes every byte count, so two passwords that differ only after the 72nd byte are
different passwords. The base64 step keeps NUL bytes out of bcrypt's input.

A stored hash without the prefix is a plain bcrypt hash (test factories, data
imported from the seed app); it is verified as such, and only matches passwords
of at most 72 bytes.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import gzip
import hashlib
import secrets
from pathlib import Path

import bcrypt

SCHEME_PREFIX = "$sha256b64$"
MIN_LENGTH = 8
MAX_LENGTH = 128
_BCRYPT_MAX_BYTES = 72
# Lower-cased, one a line; where it comes from: data/NOTICE.md.
COMMON_PASSWORDS_FILE = Path(__file__).parent / "data" / "common-passwords.txt.gz"


def _prehash(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(password.encode("utf-8")).digest())


def hash_password_sync(password: str, rounds: int) -> str:
    """Blocking: call from a worker thread (or a CLI), never on the event loop."""
    hashed = bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds=rounds))
    return SCHEME_PREFIX + hashed.decode("ascii")


def verify_password_sync(password: str, stored: str) -> bool:
    """Blocking: constant-time check of `password` against a stored hash."""
    if stored.startswith(SCHEME_PREFIX):
        candidate = _prehash(password)
        stored_bcrypt = stored[len(SCHEME_PREFIX) :]
    else:
        candidate = password.encode("utf-8")
        stored_bcrypt = stored
        if len(candidate) > _BCRYPT_MAX_BYTES:
            # A plain bcrypt hash can only match a password that fits in 72 bytes;
            # still spend the bcrypt time so the answer does not come back faster.
            candidate = b"\x01" * _BCRYPT_MAX_BYTES
            bcrypt.checkpw(candidate, stored_bcrypt.encode("ascii"))
            return False
    try:
        return bcrypt.checkpw(candidate, stored_bcrypt.encode("ascii"))
    except ValueError:  # malformed stored hash
        return False


async def hash_password(password: str, rounds: int) -> str:
    return await asyncio.to_thread(hash_password_sync, password, rounds)


async def verify_password(password: str, stored: str) -> bool:
    return await asyncio.to_thread(verify_password_sync, password, stored)


@functools.cache
def dummy_hash(rounds: int) -> str:
    return hash_password_sync(secrets.token_urlsafe(24), rounds)


async def burn_verification_time(password: str, rounds: int) -> None:
    """Spend what verifying a real user's password costs, for an unknown email.

    Unknown email and wrong password then take about the same time, so response
    times do not reveal which emails are registered.
    """
    dummy = await asyncio.to_thread(dummy_hash, rounds)
    await verify_password(password, dummy)


@functools.cache
def common_passwords() -> frozenset[str]:
    with gzip.open(COMMON_PASSWORDS_FILE, "rt", encoding="utf-8") as fh:
        return frozenset(line.strip() for line in fh if line.strip())


def is_common(password: str) -> bool:
    """True for a password of the bundled list of common ones (compared lower-cased,
    as the list is), which registration refuses (ASVS 6.2.4)."""
    return password.lower().strip() in common_passwords()
