"""`s3` storage: a private bucket; the app talks to S3 only through presigned
requests (POST with a policy to upload, GET to download)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from core.settings import Settings
from dispatch.storage.base import DOWNLOAD_TTL_S, UPLOAD_TTL_S, DownloadLink, UploadTarget


@asynccontextmanager
async def s3_client(settings: Settings) -> AsyncIterator[Any]:
    """One aiobotocore client for the app's lifetime (it pools its connections)."""
    config = AioConfig(
        signature_version="s3v4",
        connect_timeout=5,
        read_timeout=20,
        retries={"max_attempts": 3, "mode": "standard"},
        # Custom endpoints (MinIO, moto, ...) rarely do virtual-host addressing.
        s3={"addressing_style": "path"} if settings.s3_endpoint else None,
    )
    session = get_session()
    async with session.create_client(
        "s3",
        region_name=settings.aws_region,
        endpoint_url=settings.s3_endpoint or None,
        aws_access_key_id=settings.aws_access_key_id or None,
        aws_secret_access_key=settings.aws_secret or None,
        config=config,
    ) as client:
        yield client


def _is_missing(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


class S3Storage:
    name = "s3"

    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        upload_ttl_s: int = UPLOAD_TTL_S,
        download_ttl_s: int = DOWNLOAD_TTL_S,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self._upload_ttl_s = upload_ttl_s
        self._download_ttl_s = download_ttl_s

    async def presign_upload(self, key: str, *, content_type: str, max_bytes: int) -> UploadTarget:
        # S3 itself enforces the policy: exact Content-Type, size range, expiry and key.
        post = await self.client.generate_presigned_post(
            Bucket=self.bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[
                {"Content-Type": content_type},
                ["content-length-range", 1, max_bytes],
            ],
            ExpiresIn=self._upload_ttl_s,
        )
        return UploadTarget(
            url=post["url"],
            method="POST",
            fields=dict(post["fields"]),
            expires_at=datetime.now(UTC).replace(microsecond=0)
            + timedelta(seconds=self._upload_ttl_s),
        )

    async def presign_download(self, key: str, *, content_type: str) -> DownloadLink:
        url = await self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ResponseContentType": content_type,
                "ResponseContentDisposition": "attachment",
            },
            ExpiresIn=self._download_ttl_s,
        )
        return DownloadLink(
            url=url,
            expires_at=datetime.now(UTC).replace(microsecond=0)
            + timedelta(seconds=self._download_ttl_s),
        )

    async def size(self, key: str) -> int | None:
        try:
            head = await self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _is_missing(exc):
                return None
            raise
        return int(head["ContentLength"])

    async def read_prefix(self, key: str, length: int) -> bytes:
        resp = await self.client.get_object(
            Bucket=self.bucket, Key=key, Range=f"bytes=0-{length - 1}"
        )
        async with resp["Body"] as body:
            data: bytes = await body.read()
        return data[:length]

    async def seal(self, key: str) -> str | None:
        # A presigned POST stays usable until it expires: copy the upload to a key no
        # URL was issued for, drop the original, and check the copy.
        sealed = f"{key}.sealed"
        try:
            await self.client.copy_object(
                Bucket=self.bucket, Key=sealed, CopySource={"Bucket": self.bucket, "Key": key}
            )
        except ClientError as exc:
            if _is_missing(exc):
                return None
            raise
        await self.delete(key)
        return sealed

    async def delete(self, key: str) -> None:
        await self.client.delete_object(Bucket=self.bucket, Key=key)
