"""`local` storage: files under `<state_dir>/storage`, reached through signed,
expiring URLs that this app serves (see `dispatch.storage.routes`)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from core.errors import Forbidden
from dispatch.storage.base import DOWNLOAD_TTL_S, UPLOAD_TTL_S, DownloadLink, UploadTarget

_KEY_RE = re.compile(r"^[a-z]+(/[0-9a-f-]{1,64}){1,4}$")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class UrlClaims:
    op: str  # "put" or "get"
    key: str
    content_type: str
    max_bytes: int
    expires_at: int  # epoch seconds


class UrlSigner:
    """HMAC-SHA256 tokens for the local upload/download URLs.

    The key is derived from the JWT secret with a fixed label, so a storage token can
    never be mistaken for (or used to forge) an access token.
    """

    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode(), b"zendo-storage-url-v1", hashlib.sha256).digest()

    def sign(self, claims: UrlClaims) -> str:
        payload = _b64(
            orjson.dumps(
                {
                    "op": claims.op,
                    "k": claims.key,
                    "ct": claims.content_type,
                    "max": claims.max_bytes,
                    "exp": claims.expires_at,
                }
            )
        )
        mac = hmac.new(self._key, payload.encode(), hashlib.sha256).digest()
        return f"{payload}.{_b64(mac)}"

    def verify(self, token: str, *, op: str, now: float | None = None) -> UrlClaims:
        payload, _, mac = token.partition(".")
        try:
            expected = hmac.new(self._key, payload.encode(), hashlib.sha256).digest()
            valid = hmac.compare_digest(expected, _unb64(mac))
            data = orjson.loads(_unb64(payload)) if valid else None
            claims = (
                UrlClaims(data["op"], data["k"], data["ct"], int(data["max"]), int(data["exp"]))
                if isinstance(data, dict)
                else None
            )
        except (ValueError, KeyError, TypeError):
            claims = None
        if claims is None or claims.op != op or not _KEY_RE.match(claims.key):
            raise Forbidden("This URL is not valid", code="invalid_signature")
        if (now if now is not None else time.time()) >= claims.expires_at:
            raise Forbidden("This URL has expired", code="url_expired")
        return claims


class LocalStorage:
    name = "local"

    def __init__(
        self,
        root: Path,
        *,
        secret: str,
        public_base_url: str,
        upload_ttl_s: int = UPLOAD_TTL_S,
        download_ttl_s: int = DOWNLOAD_TTL_S,
    ) -> None:
        self.root = root
        self.signer = UrlSigner(secret)
        self._base = public_base_url.rstrip("/")
        self._upload_ttl_s = upload_ttl_s
        self._download_ttl_s = download_ttl_s

    def path_for(self, key: str) -> Path:
        if not _KEY_RE.match(key):
            raise ValueError(f"invalid storage key {key!r}")
        return self.root / key

    async def presign_upload(self, key: str, *, content_type: str, max_bytes: int) -> UploadTarget:
        expires = int(time.time()) + self._upload_ttl_s
        token = self.signer.sign(UrlClaims("put", key, content_type, max_bytes, expires))
        return UploadTarget(
            url=f"{self._base}/storage/upload/{token}",
            method="PUT",
            headers={"Content-Type": content_type},
            expires_at=datetime.fromtimestamp(expires, UTC),
        )

    async def presign_download(self, key: str, *, content_type: str) -> DownloadLink:
        expires = int(time.time()) + self._download_ttl_s
        token = self.signer.sign(UrlClaims("get", key, content_type, 0, expires))
        return DownloadLink(
            url=f"{self._base}/storage/download/{token}",
            expires_at=datetime.fromtimestamp(expires, UTC),
        )

    async def size(self, key: str) -> int | None:
        def stat() -> int | None:
            try:
                return self.path_for(key).stat().st_size
            except FileNotFoundError:
                return None

        return await asyncio.to_thread(stat)

    async def read_prefix(self, key: str, length: int) -> bytes:
        def read() -> bytes:
            with self.path_for(key).open("rb") as fh:
                return fh.read(length)

        return await asyncio.to_thread(read)

    async def delete(self, key: str) -> None:
        def unlink() -> None:
            self.path_for(key).unlink(missing_ok=True)

        await asyncio.to_thread(unlink)

    async def seal(self, key: str) -> str | None:
        # Local uploads are write-once (see the upload route): the checked file is final.
        return key if await self.size(key) is not None else None

    def temp_path_for(self, key: str) -> Path:
        path = self.path_for(key)
        return path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.part")
