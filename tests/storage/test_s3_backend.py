"""Documents through the `s3` backend: aiobotocore against moto's S3 server over real
HTTP, uploads sent as presigned multipart POSTs, downloads through presigned GETs.

moto does not enforce POST policies (size range, Content-Type, expiry) nor presigned
URL expiry, so those tests check (a) what we ask S3 to enforce, by decoding the signed
policy and URL, and (b) our own server-side checks at completion, which hold even if
a policy were bypassed.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

import aiohttp
import asyncpg
from aiohttp.test_utils import TestClient

from core.settings import Settings
from dispatch import appkeys as dispatch_keys
from tests.factories import bearer, create_user, token_for
from tests.helpers import JPEG, PDF, PNG, StartApp, send_upload


async def _declare(
    client: TestClient[Any, Any], auth: dict[str, str], content_type: str, size: int
) -> dict[str, Any]:
    resp = await client.post(
        "/artisan/documents",
        json={"kind": "INSURANCE", "content_type": content_type, "size_bytes": size},
        headers=auth,
    )
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def _complete(
    client: TestClient[Any, Any], auth: dict[str, str], created: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    resp = await client.post(f"/artisan/documents/{created['document_id']}/complete", headers=auth)
    return resp.status, await resp.json()


async def test_s3_happy_path_with_presigned_post_and_get(
    start_app: StartApp, s3_settings: Settings, db: asyncpg.Connection, http: aiohttp.ClientSession
) -> None:
    client = await start_app(s3_settings)
    uid = await create_user(db, role="ARTISAN", artisan_status="PENDING")
    auth = bearer(token_for(s3_settings, uid, "ARTISAN"))
    created = await _declare(client, auth, "application/pdf", len(PDF))
    upload = created["upload"]
    assert upload["method"] == "POST"
    assert upload["url"].startswith(s3_settings.s3_endpoint)
    assert upload["fields"]["key"] == f"documents/{uid}/{created['document_id']}"
    assert upload["fields"]["Content-Type"] == "application/pdf"

    status, text = await send_upload(http, upload, PDF, "application/pdf")
    assert status == 204, text
    status, body = await _complete(client, auth, created)
    assert status == 200, body
    assert body == {**body, "status": "UPLOADED", "size_bytes": len(PDF), "kind": "INSURANCE"}

    # The presigned POST is still valid, but what was checked was sealed under another key:
    # a later upload through it is never what admins download.
    assert (await send_upload(http, upload, b"<html>evil</html>", "application/pdf"))[0] == 204
    key = await db.fetchval(
        "SELECT storage_key FROM artisan_documents WHERE id = $1", created["document_id"]
    )
    assert key == f"{upload['fields']['key']}.sealed"

    admin = await create_user(db, role="ADMIN")
    resp = await client.get(
        f"/admin/artisans/{uid}/documents", headers=bearer(token_for(s3_settings, admin, "ADMIN"))
    )
    docs = await resp.json()
    assert resp.status == 200 and len(docs) == 1
    async with http.get(docs[0]["download_url"]) as dl:
        assert dl.status == 200
        assert await dl.read() == PDF
        assert dl.headers["Content-Type"] == "application/pdf"


async def test_s3_policy_and_links_are_short_lived_and_constrained(
    start_app: StartApp, s3_settings: Settings, db: asyncpg.Connection
) -> None:
    client = await start_app(s3_settings)
    uid = await create_user(db, role="ARTISAN", artisan_status="PENDING")
    auth = bearer(token_for(s3_settings, uid, "ARTISAN"))
    created = await _declare(client, auth, "image/png", 1234)
    fields = created["upload"]["fields"]
    policy = json.loads(base64.b64decode(fields["policy"]))
    conditions = policy["conditions"]
    assert ["content-length-range", 1, 1234] in conditions
    assert {"Content-Type": "image/png"} in conditions
    assert {"key": fields["key"]} in conditions
    assert {"bucket": s3_settings.s3_bucket} in conditions
    expires = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    ttl = (expires - datetime.now(UTC)).total_seconds()
    assert 500 < ttl <= 600

    # Download links are presigned GETs valid for 5 minutes.
    link = await client.app[dispatch_keys.STORAGE].presign_download(
        fields["key"], content_type="image/png"
    )
    query = parse_qs(urlparse(link.url).query)
    assert query["X-Amz-Expires"] == ["300"]
    assert "X-Amz-Signature" in query


async def test_s3_oversize_wrong_magic_and_missing_uploads(
    start_app: StartApp, s3_settings: Settings, db: asyncpg.Connection, http: aiohttp.ClientSession
) -> None:
    client = await start_app(s3_settings)
    uid = await create_user(db, role="ARTISAN", artisan_status="PENDING")
    auth = bearer(token_for(s3_settings, uid, "ARTISAN"))

    created = await _declare(client, auth, "image/jpeg", len(JPEG))
    status, body = await _complete(client, auth, created)
    assert (status, body["code"]) == (422, "upload_missing")

    # Over the declared size (real S3 refuses it by policy; moto stores it): refused on completion.
    await send_upload(http, created["upload"], JPEG + bytes(500), "image/jpeg")
    status, body = await _complete(client, auth, created)
    assert (status, body["code"]) == (422, "size_mismatch")
    status, body = await _complete(client, auth, created)
    assert body["code"] == "upload_missing"  # the oversize object was deleted

    created = await _declare(client, auth, "image/jpeg", len(PNG))
    await send_upload(http, created["upload"], PNG, "image/jpeg")
    status, body = await _complete(client, auth, created)
    assert (status, body["code"]) == (422, "magic_mismatch")

    other = await create_user(db, role="ARTISAN", artisan_status="PENDING")
    resp = await client.post(
        f"/artisan/documents/{created['document_id']}/complete",
        headers=bearer(token_for(s3_settings, other, "ARTISAN")),
    )
    assert resp.status == 404
