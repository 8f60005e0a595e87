"""The storage service's lifetime, and the local backend's signed upload/download URLs.

Uploads stream the body to disk (the app's 1 MiB `client_max_size` only applies to
buffered reads), stop as soon as the signed maximum is passed, and land atomically.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import IO

from aiohttp import web

from core import appkeys
from core.errors import Conflict, NotFound, PayloadTooLarge, ValidationFailed
from dispatch import appkeys as dispatch_keys
from dispatch.storage.base import Storage
from dispatch.storage.local import LocalStorage
from dispatch.storage.s3 import S3Storage, s3_client

routes = web.RouteTableDef()
_CHUNK_BYTES = 64 * 1024


def get_storage(app: web.Application) -> Storage:
    storage: Storage = app[dispatch_keys.STORAGE]
    return storage


def _local(request: web.Request) -> LocalStorage:
    storage = request.app[dispatch_keys.STORAGE]
    if not isinstance(storage, LocalStorage):
        raise NotFound("Local storage URLs are not served by this deployment")
    return storage


async def storage_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[appkeys.SETTINGS]
    if settings.storage == "s3":
        async with s3_client(settings) as client:
            app[dispatch_keys.STORAGE] = S3Storage(client, settings.s3_bucket)
            yield
        return
    root = settings.state_dir / "storage"
    await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
    app[dispatch_keys.STORAGE] = LocalStorage(
        root, secret=settings.jwt_secret, public_base_url=settings.public_base_url
    )
    yield


@routes.put("/storage/upload/{token}")
async def upload(request: web.Request) -> web.Response:
    storage = _local(request)
    claims = storage.signer.verify(request.match_info["token"], op="put")
    if request.content_type != claims.content_type:
        raise ValidationFailed(
            detail=f"Content-Type must be {claims.content_type}", code="content_type_mismatch"
        )
    declared = request.content_length
    if declared is not None and declared > claims.max_bytes:
        raise PayloadTooLarge(f"This URL accepts at most {claims.max_bytes} bytes")
    final = storage.path_for(claims.key)
    if await asyncio.to_thread(final.exists):
        raise Conflict("A file was already uploaded to this URL", code="already_uploaded")
    temp = storage.temp_path_for(claims.key)
    await asyncio.to_thread(final.parent.mkdir, parents=True, exist_ok=True)
    fh: IO[bytes] = await asyncio.to_thread(temp.open, "wb")
    total = 0
    try:
        async for chunk in request.content.iter_chunked(_CHUNK_BYTES):
            total += len(chunk)
            if total > claims.max_bytes:
                raise PayloadTooLarge(f"This URL accepts at most {claims.max_bytes} bytes")
            await asyncio.to_thread(fh.write, chunk)
        await asyncio.to_thread(fh.close)
        if total == 0:
            raise ValidationFailed(detail="The file is empty", code="empty_upload")
        try:  # write-once: a hard link never replaces an existing file
            await asyncio.to_thread(os.link, temp, final)
        except FileExistsError as exc:
            raise Conflict(
                "A file was already uploaded to this URL", code="already_uploaded"
            ) from exc
    finally:
        if not fh.closed:
            await asyncio.to_thread(fh.close)
        await asyncio.to_thread(temp.unlink, missing_ok=True)
    return web.Response(status=204)


@routes.get("/storage/download/{token}")
async def download(request: web.Request) -> web.StreamResponse:
    storage = _local(request)
    claims = storage.signer.verify(request.match_info["token"], op="get")
    path = storage.path_for(claims.key)
    if not await asyncio.to_thread(path.is_file):
        raise NotFound("No such object")
    return web.FileResponse(
        path,
        headers={
            "Content-Type": claims.content_type,
            "Content-Disposition": "attachment",
            "Cache-Control": "private, no-store",
        },
    )


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(storage_ctx)
    app.router.add_routes(routes)
