"""Documents through the `local` storage backend and its signed URLs, over real HTTP."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import asyncpg
from aiohttp.test_utils import TestClient

from core.settings import Settings
from dispatch import appkeys as dispatch_keys
from dispatch.storage.local import LocalStorage, UrlClaims
from tests.factories import bearer, create_user, token_for
from tests.helpers import JPEG, PDF, PNG, StartApp, send_upload


async def _artisan(db: asyncpg.Connection, settings: Settings) -> tuple[Any, dict[str, str]]:
    uid = await create_user(db, role="ARTISAN", artisan_status="PENDING")
    return uid, bearer(token_for(settings, uid, "ARTISAN"))


async def _declare(
    client: TestClient[Any, Any], auth: dict[str, str], content_type: str, size: int
) -> dict[str, Any]:
    resp = await client.post(
        "/artisan/documents",
        json={"kind": "ID_CARD", "content_type": content_type, "size_bytes": size},
        headers=auth,
    )
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_upload_complete_list_and_admin_download(
    start_app: StartApp, settings: Settings, db: asyncpg.Connection, http: aiohttp.ClientSession
) -> None:
    client = await start_app(settings)
    uid, auth = await _artisan(db, settings)
    created = await _declare(client, auth, "application/pdf", len(PDF))
    upload = created["upload"]
    assert upload["method"] == "PUT"
    assert upload["headers"] == {"Content-Type": "application/pdf"}
    assert upload["url"].startswith(str(client.make_url("/storage/upload/")))

    status, _ = await send_upload(http, upload, PDF, "application/pdf")
    assert status == 204
    resp = await client.post(f"/artisan/documents/{created['document_id']}/complete", headers=auth)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["status"] == "UPLOADED"
    assert body["size_bytes"] == len(PDF)
    assert body["content_type"] == "application/pdf"
    assert body["kind"] == "ID_CARD"

    # The URL is write-once: a checked file cannot be swapped for another one.
    status, text = await send_upload(http, upload, b"%PDF-evil", "application/pdf")
    assert (status, "already_uploaded" in text) == (409, True)

    listed = await (await client.get("/artisan/documents", headers=auth)).json()
    assert [d["document_id"] for d in listed] == [created["document_id"]]
    assert listed[0]["status"] == "UPLOADED"

    admin = await create_user(db, role="ADMIN")
    resp = await client.get(
        f"/admin/artisans/{uid}/documents", headers=bearer(token_for(settings, admin, "ADMIN"))
    )
    docs = await resp.json()
    assert resp.status == 200
    assert docs[0]["document_id"] == created["document_id"]
    # The link works without any login token.
    async with http.get(docs[0]["download_url"]) as dl:
        assert dl.status == 200
        assert dl.headers["Content-Type"] == "application/pdf"
        assert dl.headers["Content-Disposition"] == "attachment"
        assert await dl.read() == PDF


async def test_streams_uploads_over_the_1_mib_body_limit(
    start_app: StartApp, settings: Settings, db: asyncpg.Connection, http: aiohttp.ClientSession
) -> None:
    client = await start_app(settings)
    _, auth = await _artisan(db, settings)
    big = JPEG + bytes(3 * 1024 * 1024)
    created = await _declare(client, auth, "image/jpeg", len(big))
    status, _ = await send_upload(http, created["upload"], big, "image/jpeg")
    assert status == 204
    resp = await client.post(f"/artisan/documents/{created['document_id']}/complete", headers=auth)
    assert resp.status == 200
    assert (await resp.json())["size_bytes"] == len(big)


async def test_declared_type_and_size_are_validated(
    start_app: StartApp, settings: Settings, db: asyncpg.Connection
) -> None:
    client = await start_app(settings)
    _, auth = await _artisan(db, settings)
    cases = [
        ({"kind": "ID_CARD", "content_type": "text/html", "size_bytes": 10}, "content_type"),
        ({"kind": "ID_CARD", "content_type": "image/gif", "size_bytes": 10}, "content_type"),
        (
            {"kind": "ID_CARD", "content_type": "image/png", "size_bytes": 10 * 1024 * 1024 + 1},
            "size_bytes",
        ),
        ({"kind": "ID_CARD", "content_type": "image/png", "size_bytes": 0}, "size_bytes"),
        ({"kind": "PASSPORT", "content_type": "image/png", "size_bytes": 10}, "kind"),
        ({"kind": "KBIS", "content_type": "image/png"}, "size_bytes"),
    ]
    for body, field in cases:
        resp = await client.post("/artisan/documents", json=body, headers=auth)
        assert resp.status == 422, body
        problem = await resp.json()
        assert field in [e["field"] for e in problem["errors"]], problem
    assert await db.fetchval("SELECT count(*) FROM artisan_documents") == 0


async def test_oversize_upload_is_refused_while_streaming(
    start_app: StartApp, settings: Settings, db: asyncpg.Connection, http: aiohttp.ClientSession
) -> None:
    client = await start_app(settings)
    _, auth = await _artisan(db, settings)
    created = await _declare(client, auth, "image/png", len(PNG))
    status, text = await send_upload(http, created["upload"], PNG + bytes(1000), "image/png")
    assert status == 413, text

    async def chunks() -> Any:  # no Content-Length: the limit holds while streaming
        yield PNG
        yield bytes(5000)

    async with http.put(
        created["upload"]["url"], data=chunks(), headers={"Content-Type": "image/png"}
    ) as resp:
        assert resp.status == 413
    resp = await client.post(f"/artisan/documents/{created['document_id']}/complete", headers=auth)
    assert resp.status == 422
    assert (await resp.json())["code"] == "upload_missing"


async def test_upload_with_another_content_type_is_refused(
    start_app: StartApp, settings: Settings, db: asyncpg.Connection, http: aiohttp.ClientSession
) -> None:
    client = await start_app(settings)
    _, auth = await _artisan(db, settings)
    created = await _declare(client, auth, "image/png", len(PNG))
    status, text = await send_upload(http, created["upload"], PNG, "text/html")
    assert status == 422
    assert "content_type_mismatch" in text
    status, text = await send_upload(http, created["upload"], b"", "image/png")
    assert (status, "empty_upload" in text) == (422, True)
    assert (await send_upload(http, created["upload"], PNG, "image/png"))[0] == 204


async def test_wrong_magic_number_is_rejected_and_the_file_deleted(
    start_app: StartApp, settings: Settings, db: asyncpg.Connection, http: aiohttp.ClientSession
) -> None:
    client = await start_app(settings)
    _, auth = await _artisan(db, settings)
    fake_pdf = b"<html><script>alert(1)</script></html>"
    created = await _declare(client, auth, "application/pdf", len(fake_pdf))
    assert (await send_upload(http, created["upload"], fake_pdf, "application/pdf"))[0] == 204
    url = f"/artisan/documents/{created['document_id']}/complete"
    resp = await client.post(url, headers=auth)
    assert resp.status == 422
    assert (await resp.json())["code"] == "magic_mismatch"
    resp = await client.post(url, headers=auth)
    assert (await resp.json())["code"] == "upload_missing"
    status = await db.fetchval(
        "SELECT status FROM artisan_documents WHERE id = $1", created["document_id"]
    )
    assert status == "PENDING_UPLOAD"
    # A PNG declared as a JPEG is refused too.
    created = await _declare(client, auth, "image/jpeg", len(PNG))
    await send_upload(http, created["upload"], PNG, "image/jpeg")
    resp = await client.post(f"/artisan/documents/{created['document_id']}/complete", headers=auth)
    assert (await resp.json())["code"] == "magic_mismatch"


async def test_expired_and_tampered_urls_are_refused(
    start_app: StartApp, settings: Settings, db: asyncpg.Connection, http: aiohttp.ClientSession
) -> None:
    client = await start_app(settings)
    _, auth = await _artisan(db, settings)
    storage = client.app[dispatch_keys.STORAGE]
    assert isinstance(storage, LocalStorage)
    key = "documents/00000000-0000-0000-0000-000000000001/00000000-0000-0000-0000-000000000002"
    past = int(time.time()) - 1
    expired = storage.signer.sign(UrlClaims("put", key, "image/png", 1000, past))
    resp = await client.put(
        f"/storage/upload/{expired}", data=PNG, headers={"Content-Type": "image/png"}
    )
    assert resp.status == 403
    assert (await resp.json())["code"] == "url_expired"

    created = await _declare(client, auth, "image/png", len(PNG))
    token = created["upload"]["url"].rsplit("/", 1)[1]
    payload, mac = token.split(".")
    forged = f"{payload[:-2]}AA.{mac}"
    resp = await client.put(
        f"/storage/upload/{forged}", data=PNG, headers={"Content-Type": "image/png"}
    )
    assert resp.status == 403
    assert (await resp.json())["code"] == "invalid_signature"
    # An upload token is not a download token.
    resp = await client.get(f"/storage/download/{token}")
    assert resp.status == 403

    await send_upload(http, created["upload"], PNG, "image/png")
    expired_get = storage.signer.sign(UrlClaims("get", key, "image/png", 0, past))
    resp = await client.get(f"/storage/download/{expired_get}")
    assert resp.status == 403
    assert (await resp.json())["code"] == "url_expired"


async def test_another_artisans_document_is_not_found(
    start_app: StartApp, settings: Settings, db: asyncpg.Connection, http: aiohttp.ClientSession
) -> None:
    client = await start_app(settings)
    _, auth = await _artisan(db, settings)
    _, other_auth = await _artisan(db, settings)
    created = await _declare(client, auth, "image/png", len(PNG))
    await send_upload(http, created["upload"], PNG, "image/png")
    resp = await client.post(
        f"/artisan/documents/{created['document_id']}/complete", headers=other_auth
    )
    assert resp.status == 404
    assert await (await client.get("/artisan/documents", headers=other_auth)).json() == []
    resp = await client.post("/artisan/documents/not-a-uuid/complete", headers=auth)
    assert resp.status == 404


async def test_documents_are_for_artisans_only(
    start_app: StartApp, settings: Settings, db: asyncpg.Connection
) -> None:
    client = await start_app(settings)
    client_id = await create_user(db, role="CLIENT")
    resp = await client.post(
        "/artisan/documents",
        json={"kind": "ID_CARD", "content_type": "image/png", "size_bytes": 10},
        headers=bearer(token_for(settings, client_id, "CLIENT")),
    )
    assert resp.status == 403
    resp = await client.get("/artisan/documents")
    assert resp.status == 401
