"""core.tokens: the check of our own tokens against PyJWT's general decode.

`_verify_own` may only accept what PyJWT (with this module's rules) accepts, with the
same principal; everything else it leaves to PyJWT. Checked on tokens varied claim by
claim, header by header and character by character.
"""

from __future__ import annotations

import base64
import hmac
import json
import time
import uuid
from typing import Any

import jwt
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from core import tokens
from core.errors import Unauthorized
from core.principal import Principal

SECRET = "token-test-secret-" + "k" * 32
OTHER_SECRET = "another-secret-" + "q" * 32


def _pyjwt(secret: str, token: str) -> Principal | None:
    try:
        return tokens._decode_access_token(secret, token)
    except Unauthorized:
        return None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _sign(claims: dict[str, Any], secret: str, extra_header: dict[str, str] | None) -> str:
    """An HS256 token of any claims (PyJWT's encode refuses some, e.g. a non-string iss),
    written as PyJWT writes them."""
    header = {"alg": "HS256", "typ": "JWT", **(extra_header or {})}
    compact = (",", ":")
    signing_input = ".".join(
        _b64(json.dumps(part, separators=compact, sort_keys=part is header).encode())
        for part in (header, claims)
    )
    mac = hmac.digest(secret.encode(), signing_input.encode(), "sha256")
    return f"{signing_input}.{_b64(mac)}"


def test_tokens_signed_here_are_written_as_pyjwt_writes_them() -> None:
    claims = _claims()
    assert _sign(claims, SECRET, None) == jwt.encode(claims, SECRET, algorithm="HS256")


def test_our_tokens_take_the_short_check_with_pyjwts_answer() -> None:
    for session_id in (None, uuid.uuid4()):
        for role in ("CLIENT", "ARTISAN", "ADMIN"):
            token = tokens.issue_access_token(
                SECRET, user_id=uuid.uuid4(), role=role, ttl_s=900, session_id=session_id
            )
            assert token.split(".", 1)[0] == tokens.OWN_HEADER
            own = tokens._verify_own(SECRET, token)
            assert own is not None
            assert own == tokens._decode_access_token(SECRET, token)
            assert own.role == role
            assert own.session_id == (None if session_id is None else str(session_id))
            assert tokens._verify_own(OTHER_SECRET, token) is None


def _claims() -> dict[str, Any]:
    now = int(time.time())
    return {
        "sub": str(uuid.uuid4()),
        "role": "CLIENT",
        "typ": "access",
        "iat": now,
        "exp": now + 900,
        "jti": "a" * 32,
        "iss": tokens.ISSUER,
        "aud": tokens.AUDIENCE,
    }


def test_what_the_short_check_leaves_to_pyjwt() -> None:
    """Valid for PyJWT, yet not written by `issue_access_token`: PyJWT decides."""
    now = int(time.time())
    accepted_by_pyjwt = {
        "audience list": {**_claims(), "aud": [tokens.AUDIENCE, "other"]},
        "not before": {**_claims(), "nbf": now},
        "extra claim": {**_claims(), "name": "x"},
        "float exp": {**_claims(), "exp": now + 900.5},
    }
    for name, claims in accepted_by_pyjwt.items():
        token = jwt.encode(claims, SECRET, algorithm="HS256")
        assert tokens._verify_own(SECRET, token) is None, name
        assert tokens.verify_access_token(SECRET, token) == _pyjwt(SECRET, token), name
    token = jwt.encode(_claims(), SECRET, algorithm="HS256", headers={"kid": "k1"})
    assert tokens._verify_own(SECRET, token) is None
    assert _pyjwt(SECRET, token) is not None


def test_non_canonical_encodings_are_left_to_pyjwt() -> None:
    token = tokens.issue_access_token(SECRET, user_id=uuid.uuid4(), role="CLIENT", ttl_s=900)
    header, payload, signature = token.split(".")
    for variant in (
        f"{header}.{payload}.{signature}=",  # padding
        f"{header}.{payload}.{signature}!",  # a character outside the alphabet
        f"{header}.{payload}=.{signature}",
        f"{header}.{payload}.{signature}.",
        f"{header}.{payload}",
        f"{header}.{payload}.é{signature}",
        f" {token}",
    ):
        assert tokens._verify_own(SECRET, variant) is None, variant
    # Each is either refused by PyJWT too, or accepted with the same principal.
    for variant in (f"{header}.{payload}.{signature}=", f"{header}.{payload}.{signature}!"):
        assert _pyjwt(SECRET, variant) in (None, _pyjwt(SECRET, token))


def test_time_claims_follow_pyjwts_rules_with_exact_expiry() -> None:
    now = int(time.time())
    for iat, exp, expected in (
        (now + tokens.CLOCK_SKEW_S - 5, now + 900, True),  # issued slightly ahead: skew
        (now + tokens.CLOCK_SKEW_S + 60, now + 900, False),  # issued in the future
        (now - 900, now - 1, False),  # expired: no leeway
    ):
        token = jwt.encode({**_claims(), "iat": iat, "exp": exp}, SECRET, algorithm="HS256")
        assert (tokens._verify_own(SECRET, token) is not None) is expected
        assert (_pyjwt(SECRET, token) is not None) is expected


_MUTATIONS: dict[str, Any] = {
    "sub": st.sampled_from(["not-a-uuid", 7, None, str(uuid.UUID(int=5)).upper()]),
    "role": st.sampled_from(["ROOT", "client", 1, None, ["CLIENT"], "ARTISAN"]),
    "typ": st.sampled_from(["refresh", None, 1, "access"]),
    "iat": st.one_of(st.integers(-100, 200), st.sampled_from([None, "0", 1.5, True])),
    "exp": st.one_of(st.integers(-100, 1000), st.sampled_from([None, "900", 900.0, False])),
    "jti": st.sampled_from([1, None, "", "x"]),
    "iss": st.sampled_from(["evil", None, 1, ["zendo"], tokens.ISSUER]),
    "aud": st.sampled_from(["other", None, [tokens.AUDIENCE], [], tokens.AUDIENCE]),
    "sid": st.sampled_from([str(uuid.UUID(int=9)), "not-a-uuid", 3, None]),
    "nbf": st.integers(-100, 200),
    "extra": st.integers(),
}
_TIMES = {"iat", "exp", "nbf"}
_HEADERS = [{"kid": "1"}, {"typ": "at+jwt"}, {"alg": "HS256"}]


@settings(max_examples=400, deadline=None)
@given(
    changes=st.one_of(
        st.just({}),
        st.sampled_from(sorted(_MUTATIONS)).flatmap(
            lambda k: st.fixed_dictionaries({k: _MUTATIONS[k]})
        ),
        st.dictionaries(st.sampled_from(sorted(_MUTATIONS)), st.none(), max_size=3).flatmap(
            lambda keys: st.fixed_dictionaries({k: _MUTATIONS[k] for k in keys})
        ),
    ),
    drop=st.one_of(st.just(set()), st.sets(st.sampled_from(sorted(tokens._REQUIRED)), max_size=1)),
    header=st.one_of(st.none(), st.sampled_from(_HEADERS)),
    signed_with=st.one_of(st.just(SECRET), st.sampled_from([SECRET, OTHER_SECRET])),
    flip=st.one_of(st.just(-1), st.integers(0, 400)),
    claims_only=st.booleans(),
)
def test_the_short_check_accepts_only_what_pyjwt_accepts(
    changes: dict[str, Any],
    drop: set[str],
    header: dict[str, str] | None,
    signed_with: str,
    flip: int,
    claims_only: bool,
) -> None:
    if claims_only:  # half the examples: our header, our key, the signature as computed
        header, signed_with, flip = None, SECRET, -1
    now = int(time.time())
    claims = _claims()
    for name, value in changes.items():
        claims[name] = now + value if name in _TIMES and type(value) is int else value
    for name in drop:
        claims.pop(name, None)
    token = _sign(claims, signed_with, header)
    if flip >= 0:  # one character changed, anywhere
        i = flip % len(token)
        token = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
    own = tokens._verify_own(SECRET, token)
    event("short check: " + ("accepted" if own is not None else "left to PyJWT"))
    if own is not None:
        assert own == tokens._decode_access_token(SECRET, token)
    else:
        with_pyjwt = _pyjwt(SECRET, token)
        # What the short check turns down but PyJWT accepts is never one of our own tokens.
        if with_pyjwt is not None:
            assert (
                header is not None
                or not claims.keys() <= tokens._OWN_CLAIMS
                or type(claims.get("exp")) is not int
                or type(claims.get("iat")) is not int
                or claims.get("aud") != tokens.AUDIENCE
                or claims.get("iss") != tokens.ISSUER
            ), claims


def test_a_tampered_payload_never_passes() -> None:
    token = tokens.issue_access_token(SECRET, user_id=uuid.uuid4(), role="CLIENT", ttl_s=900)
    header, _payload, signature = token.split(".")
    forged = _b64(json.dumps({**_claims(), "role": "ADMIN"}, separators=(",", ":")).encode())
    with pytest.raises(Unauthorized):
        tokens.verify_access_token(SECRET, f"{header}.{forged}.{signature}")
