"""Request bodies of the artisans context (decoded and validated by msgspec)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Specialty = Literal["PLUMBER", "ELECTRICIAN", "LOCKSMITH", "HEATING", "GLAZIER", "APPLIANCE_REPAIR"]
DocumentKind = Literal["ID_CARD", "KBIS", "INSURANCE"]
PhoneNumber = Annotated[str, msgspec.Meta(pattern=r"^\+?[0-9]{6,15}$", max_length=20)]
SizeBytes = Annotated[int, msgspec.Meta(ge=1)]
ContentType = Annotated[str, msgspec.Meta(max_length=100)]

DOCUMENT_CONTENT_TYPES: tuple[str, ...] = ("application/pdf", "image/jpeg", "image/png")
PHOTO_CONTENT_TYPES: tuple[str, ...] = ("image/jpeg", "image/png")


class ProfilePatch(msgspec.Struct, forbid_unknown_fields=True):
    specialty: Specialty | msgspec.UnsetType = msgspec.UNSET
    # null clears the phone number.
    phone_number: PhoneNumber | msgspec.UnsetType | None = msgspec.UNSET


class NewDocument(msgspec.Struct, forbid_unknown_fields=True):
    kind: DocumentKind
    content_type: ContentType
    size_bytes: SizeBytes


class NewPhoto(msgspec.Struct, forbid_unknown_fields=True):
    phase: Literal["BEFORE", "AFTER"]
    content_type: ContentType
    size_bytes: SizeBytes
