"""Request bodies of the auth routes and the field rules beyond their types.

msgspec decodes and type-checks a body (a wrong type is a 422 naming the field);
the `validate_*` functions then check lengths, formats and roles, reporting every
bad field of a request at once.
"""

from __future__ import annotations

import re

import msgspec

from core.domain import SPECIALTIES
from core.errors import FieldError, ValidationFailed
from dispatch.auth import passwords

REGISTRABLE_ROLES: tuple[str, ...] = ("CLIENT", "ARTISAN")
EMAIL_MAX_LENGTH = 254
PHONE_MAX_LENGTH = 20
# ASCII addresses with a dotted domain. Internationalised addresses are refused
# rather than risk Python and PostgreSQL lower-casing them differently.
_EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
# Optional leading +, then digits with the usual separators; 6 to 15 digits (E.164).
_PHONE_RE = re.compile(r"^\+?[0-9][0-9 ().-]*[0-9]$")


class RegisterRequest(msgspec.Struct, kw_only=True):
    email: str
    password: str
    role: str
    phone_number: str | None = None
    specialty: str | None = None


class LoginRequest(msgspec.Struct, kw_only=True):
    email: str
    password: str


class RefreshRequest(msgspec.Struct, kw_only=True):
    """Body of /auth/refresh and /auth/logout; web clients send the cookie instead."""

    refresh_token: str | None = None


def normalise_email(email: str) -> str:
    return email.lower()


def email_error(email: str) -> FieldError | None:
    if len(email) > EMAIL_MAX_LENGTH or not _EMAIL_RE.match(email):
        return FieldError("email", "must be a valid email address")
    return None


def password_error(password: str) -> FieldError | None:
    if not passwords.MIN_LENGTH <= len(password) <= passwords.MAX_LENGTH:
        return FieldError(
            "password",
            f"must be {passwords.MIN_LENGTH} to {passwords.MAX_LENGTH} characters",
        )
    if passwords.is_common(password):
        return FieldError("password", "is too common; choose another")
    return None


def phone_error(phone: str) -> FieldError | None:
    digits = sum(ch.isdigit() for ch in phone)
    if len(phone) > PHONE_MAX_LENGTH or not _PHONE_RE.match(phone) or not 6 <= digits <= 15:
        return FieldError(
            "phone_number",
            f"must be a phone number (6 to 15 digits, at most {PHONE_MAX_LENGTH} characters)",
        )
    return None


def validate_register(body: RegisterRequest) -> None:
    """Raise one 422 listing every invalid field."""
    errors = [e for e in (email_error(body.email), password_error(body.password)) if e]
    if body.phone_number is not None and (err := phone_error(body.phone_number)):
        errors.append(err)
    if body.role not in REGISTRABLE_ROLES:
        message = (
            "ADMIN accounts cannot be registered"
            if body.role == "ADMIN"
            else "must be CLIENT or ARTISAN"
        )
        errors.append(FieldError("role", message))
    if body.role == "ARTISAN":
        if body.specialty is None:
            errors.append(FieldError("specialty", "required for artisans"))
        elif body.specialty not in SPECIALTIES:
            errors.append(FieldError("specialty", f"must be one of {', '.join(SPECIALTIES)}"))
    elif body.specialty is not None and body.role == "CLIENT":
        errors.append(FieldError("specialty", "only artisans have a specialty"))
    if errors:
        raise ValidationFailed(errors)


def validate_login(body: LoginRequest) -> None:
    """Bound the inputs; a well-formed but wrong pair is a 401, not a 422."""
    errors = []
    if len(body.email) > EMAIL_MAX_LENGTH:
        errors.append(FieldError("email", f"at most {EMAIL_MAX_LENGTH} characters"))
    if len(body.password) > passwords.MAX_LENGTH:
        errors.append(FieldError("password", f"at most {passwords.MAX_LENGTH} characters"))
    if errors:
        raise ValidationFailed(errors)
