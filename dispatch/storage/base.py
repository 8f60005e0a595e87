"""The storage interface, and the upload check shared by documents and photos."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from core.errors import FieldError, ValidationFailed

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
UPLOAD_TTL_S = 600
DOWNLOAD_TTL_S = 300
# Enough leading bytes to recognise every accepted type.
MAGIC_PREFIX_BYTES = 16
_MAGIC: dict[str, tuple[bytes, ...]] = {
    "application/pdf": (b"%PDF-",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
}


@dataclass(frozen=True, slots=True)
class UploadTarget:
    """Where and how the app sends the file: PUT with `headers`, or POST multipart
    with `fields` then `file`."""

    url: str
    method: str
    expires_at: datetime
    fields: dict[str, str] | None = None
    headers: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "url": self.url,
            "method": self.method,
            "expires_at": self.expires_at,
        }
        if self.fields is not None:
            body["fields"] = self.fields
        if self.headers is not None:
            body["headers"] = self.headers
        return body


@dataclass(frozen=True, slots=True)
class DownloadLink:
    url: str
    expires_at: datetime


class Storage(Protocol):
    """Private objects addressed by server-generated keys."""

    name: str

    async def presign_upload(
        self, key: str, *, content_type: str, max_bytes: int
    ) -> UploadTarget: ...

    async def presign_download(self, key: str, *, content_type: str) -> DownloadLink: ...

    async def size(self, key: str) -> int | None:
        """The stored object's size, or None when it does not exist."""
        ...

    async def read_prefix(self, key: str, length: int) -> bytes:
        """The first `length` bytes (a ranged read, never the whole object)."""
        ...

    async def delete(self, key: str) -> None: ...

    async def seal(self, key: str) -> str | None:
        """Freeze an uploaded object so its (still valid) upload URL cannot replace it after
        it is checked; return the key it now lives at, or None when nothing was uploaded."""
        ...


@dataclass(frozen=True, slots=True)
class VerifiedObject:
    key: str
    size: int


def validate_declared(
    content_type: str, size_bytes: int, allowed: tuple[str, ...], max_bytes: int = MAX_UPLOAD_BYTES
) -> None:
    errors = []
    if content_type not in allowed:
        errors.append(FieldError("content_type", f"must be one of {', '.join(allowed)}"))
    if not 1 <= size_bytes <= max_bytes:
        errors.append(FieldError("size_bytes", f"must be between 1 and {max_bytes}"))
    if errors:
        raise ValidationFailed(errors)


async def check_uploaded_object(
    storage: Storage, key: str, *, content_type: str, declared_size: int
) -> VerifiedObject:
    """Seal and check a finished upload; return where it lives and its real size.

    422 `upload_missing` when nothing was stored, `size_mismatch` when it is over the
    declared size, `magic_mismatch` when its first bytes are not the declared type.
    A rejected object is deleted so the app can upload again with a fresh URL.
    """
    sealed = await storage.seal(key)
    size = None if sealed is None else await storage.size(sealed)
    if sealed is not None and not size:
        await storage.delete(sealed)  # an empty object: let the app upload again
    if sealed is None or not size:
        raise ValidationFailed([FieldError("file", "no file was uploaded")], code="upload_missing")
    if size > declared_size:
        await storage.delete(sealed)
        raise ValidationFailed(
            [FieldError("size_bytes", f"uploaded {size} bytes, declared {declared_size}")],
            code="size_mismatch",
        )
    head = await storage.read_prefix(sealed, MAGIC_PREFIX_BYTES)
    if not any(head.startswith(magic) for magic in _MAGIC.get(content_type, ())):
        await storage.delete(sealed)
        raise ValidationFailed(
            [FieldError("content_type", f"the file is not {content_type}")],
            code="magic_mismatch",
        )
    return VerifiedObject(sealed, size)
