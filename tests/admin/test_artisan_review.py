"""Admin review of artisans and documents, the audit trail, and role guards."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import asyncpg
from aiohttp.test_utils import TestClient

from core import appkeys, redis_keys
from core.settings import Settings
from tests.factories import bearer, create_user, token_for
from tests.helpers import PNG, StartApp, live_state_written, send_upload


async def _admin(db: asyncpg.Connection, settings: Settings) -> tuple[Any, dict[str, str]]:
    admin = await create_user(db, role="ADMIN")
    return admin, bearer(token_for(settings, admin, "ADMIN"))


async def _uploaded_document(
    client: TestClient[Any, Any], http: aiohttp.ClientSession, auth: dict[str, str]
) -> str:
    resp = await client.post(
        "/artisan/documents",
        json={"kind": "KBIS", "content_type": "image/png", "size_bytes": len(PNG)},
        headers=auth,
    )
    created = await resp.json()
    await send_upload(http, created["upload"], PNG, "image/png")
    resp = await client.post(f"/artisan/documents/{created['document_id']}/complete", headers=auth)
    assert resp.status == 200
    document_id: str = created["document_id"]
    return document_id


async def test_list_pending_with_document_links_and_pagination(
    start_app: StartApp, settings: Settings, db: asyncpg.Connection, http: aiohttp.ClientSession
) -> None:
    client = await start_app(settings)
    _, admin_auth = await _admin(db, settings)
    pending = [await create_user(db, role="ARTISAN", artisan_status="PENDING") for _ in range(3)]
    await create_user(db, role="ARTISAN", artisan_status="VERIFIED")
    doc_id = await _uploaded_document(
        client, http, bearer(token_for(settings, pending[0], "ARTISAN"))
    )
    # A declared but never uploaded document is not offered for review.
    await client.post(
        "/artisan/documents",
        json={"kind": "ID_CARD", "content_type": "image/png", "size_bytes": 10},
        headers=bearer(token_for(settings, pending[0], "ARTISAN")),
    )

    resp = await client.get("/admin/artisans?status=PENDING", headers=admin_auth)
    assert resp.status == 200
    items = await resp.json()
    assert resp.headers["X-Total-Count"] == "3"
    assert [i["user_id"] for i in items] == [str(p) for p in pending]
    assert all(i["status"] == "PENDING" for i in items)
    first = items[0]
    assert [d["document_id"] for d in first["documents"]] == [doc_id]
    # a page of artisans hands out no download links: they are minted on demand, audited
    assert "download_url" not in first["documents"][0]
    resp = await client.get(f"/admin/artisans/{pending[0]}/documents", headers=admin_auth)
    links = await resp.json()
    async with http.get(links[0]["download_url"]) as dl:
        assert dl.status == 200 and await dl.read() == PNG

    page = await (
        await client.get("/admin/artisans?status=PENDING&limit=2&offset=2", headers=admin_auth)
    ).json()
    assert [i["user_id"] for i in page] == [str(pending[2])]
    everyone = await (await client.get("/admin/artisans", headers=admin_auth)).json()
    assert len(everyone) == 4

    for query in ("status=NOPE", "limit=0", "limit=101", "offset=-1", "limit=abc"):
        resp = await client.get(f"/admin/artisans?{query}", headers=admin_auth)
        assert resp.status == 422, query


async def test_verify_and_reject_write_the_audit_trail(
    start_app: StartApp, settings: Settings, db: asyncpg.Connection
) -> None:
    client = await start_app(settings)
    admin, admin_auth = await _admin(db, settings)
    artisan = await create_user(db, role="ARTISAN", artisan_status="PENDING")

    resp = await client.post(f"/admin/artisans/{artisan}/verify", headers=admin_auth)
    assert resp.status == 200
    assert (await resp.json())["status"] == "VERIFIED"
    # Idempotent: verifying again changes nothing and answers 200.
    resp = await client.post(f"/admin/artisans/{artisan}/verify", headers=admin_auth)
    assert resp.status == 200

    await db.execute("UPDATE artisans SET current_status = 'ONLINE' WHERE user_id = $1", artisan)
    resp = await client.post(
        f"/admin/artisans/{artisan}/reject",
        json={"reason": "Expired insurance"},
        headers=admin_auth,
    )
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "REJECTED"
    assert body["current_status"] == "OFFLINE"
    assert body["rejection_reason"] == "Expired insurance"
    row = await db.fetchrow(
        "SELECT status, current_status, rejection_reason FROM artisans WHERE user_id = $1", artisan
    )
    assert tuple(row) == ("REJECTED", "OFFLINE", "Expired insurance")

    audit = await db.fetch(
        "SELECT admin_id, action, target_type, target_id, data FROM admin_audit ORDER BY id"
    )
    assert [a["action"] for a in audit] == ["artisan.verify", "artisan.verify", "artisan.reject"]
    assert all(a["admin_id"] == admin and a["target_id"] == artisan for a in audit)
    data = [json.loads(a["data"]) for a in audit]
    assert data[0]["changed"] is True and data[1]["changed"] is False
    assert (data[2]["reason"], data[2]["was"], data[2]["from"]) == (
        "Expired insurance",
        "ONLINE",
        "VERIFIED",
    )

    # A rejected artisan cannot go ONLINE: the database refuses it.
    try:
        await db.execute(
            "UPDATE artisans SET current_status = 'ONLINE' WHERE user_id = $1", artisan
        )
    except asyncpg.CheckViolationError:
        pass
    else:
        raise AssertionError("a REJECTED artisan went ONLINE")


async def test_reject_conflicts_and_bad_input(
    start_app: StartApp, settings: Settings, db: asyncpg.Connection
) -> None:
    client = await start_app(settings)
    _, admin_auth = await _admin(db, settings)
    busy = await create_user(db, role="ARTISAN", artisan_status="VERIFIED")
    await db.execute("UPDATE artisans SET current_status = 'BUSY' WHERE user_id = $1", busy)
    resp = await client.post(
        f"/admin/artisans/{busy}/reject", json={"reason": "fraud"}, headers=admin_auth
    )
    assert resp.status == 409
    assert (await resp.json())["code"] == "artisan_busy"
    assert await db.fetchval("SELECT status FROM artisans WHERE user_id = $1", busy) == "VERIFIED"
    assert await db.fetchval("SELECT count(*) FROM admin_audit") == 0

    for body in ({}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 1001}, {"reason": 3}):
        resp = await client.post(f"/admin/artisans/{busy}/reject", json=body, headers=admin_auth)
        assert resp.status == 422, body
    resp = await client.post(
        "/admin/artisans/00000000-0000-0000-0000-000000000000/verify", headers=admin_auth
    )
    assert resp.status == 404
    resp = await client.post("/admin/artisans/nope/verify", headers=admin_auth)
    assert resp.status == 404


async def test_document_review(
    start_app: StartApp, settings: Settings, db: asyncpg.Connection, http: aiohttp.ClientSession
) -> None:
    client = await start_app(settings)
    admin, admin_auth = await _admin(db, settings)
    artisan = await create_user(db, role="ARTISAN", artisan_status="PENDING")
    auth = bearer(token_for(settings, artisan, "ARTISAN"))
    doc_id = await _uploaded_document(client, http, auth)

    resp = await client.post(
        f"/admin/documents/{doc_id}/review",
        json={"status": "REJECTED", "reason": "Blurry"},
        headers=admin_auth,
    )
    assert resp.status == 200
    assert (await resp.json())["status"] == "REJECTED"
    mine = await (await client.get("/artisan/documents", headers=auth)).json()
    assert (mine[0]["status"], mine[0]["review_reason"]) == ("REJECTED", "Blurry")
    resp = await client.post(
        f"/admin/documents/{doc_id}/review", json={"status": "ACCEPTED"}, headers=admin_auth
    )
    assert (await resp.json())["status"] == "ACCEPTED"
    reviewed_by = await db.fetchval(
        "SELECT reviewed_by FROM artisan_documents WHERE id = $1", doc_id
    )
    assert reviewed_by == admin
    actions = await db.fetch(
        "SELECT action, target_id FROM admin_audit WHERE action = 'document.review'"
    )
    assert len(actions) == 2 and str(actions[0]["target_id"]) == doc_id

    resp = await client.post(
        f"/admin/documents/{doc_id}/review", json={"status": "UPLOADED"}, headers=admin_auth
    )
    assert resp.status == 422
    resp = await client.post(
        "/artisan/documents",
        json={"kind": "ID_CARD", "content_type": "image/png", "size_bytes": 10},
        headers=auth,
    )
    pending_id = (await resp.json())["document_id"]
    resp = await client.post(
        f"/admin/documents/{pending_id}/review", json={"status": "ACCEPTED"}, headers=admin_auth
    )
    assert resp.status == 409
    assert (await resp.json())["code"] == "document_not_uploaded"


async def test_role_guards_on_admin_and_artisan_routes(
    start_app: StartApp, settings: Settings, db: asyncpg.Connection
) -> None:
    client = await start_app(settings)
    artisan = await create_user(db, role="ARTISAN", artisan_status="PENDING")
    customer = await create_user(db, role="CLIENT")
    admin = await create_user(db, role="ADMIN")
    as_artisan = bearer(token_for(settings, artisan, "ARTISAN"))
    as_client = bearer(token_for(settings, customer, "CLIENT"))
    as_admin = bearer(token_for(settings, admin, "ADMIN"))
    admin_calls = [
        ("GET", "/admin/artisans", None),
        ("GET", f"/admin/artisans/{artisan}/documents", None),
        ("POST", f"/admin/artisans/{artisan}/verify", None),
        ("POST", f"/admin/artisans/{artisan}/reject", {"reason": "x"}),
    ]
    for method, path, body in admin_calls:
        for headers in (as_artisan, as_client):
            resp = await client.request(method, path, json=body, headers=headers)
            assert resp.status == 403, (method, path)
        resp = await client.request(method, path, json=body)
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    for path in ("/artisan/profile", "/artisan/documents"):
        for headers in (as_client, as_admin):
            assert (await client.get(path, headers=headers)).status == 403
    assert await db.fetchval("SELECT status FROM artisans WHERE user_id = $1", artisan) == "PENDING"


async def test_reject_takes_an_online_artisan_out_of_live_state(
    start_app: StartApp, settings: Settings, db: asyncpg.Connection
) -> None:
    client = await start_app(settings)
    _, admin_auth = await _admin(db, settings)
    artisan = await create_user(db, role="ARTISAN", artisan_status="VERIFIED")
    await db.execute("UPDATE artisans SET current_status = 'ONLINE' WHERE user_id = $1", artisan)
    redis = client.app[appkeys.REDIS]
    key = redis_keys.live_artisan(str(artisan))
    await redis.hset(
        key,
        mapping={
            "lat": "48.85",
            "lon": "2.35",
            "ts": "1",
            "specialty": "PLUMBER",
            "level": "STANDARD",
            "rating": "4.5",
            "verified": "1",
            "avail": "1",
            "current_status": "ONLINE",
        },
    )
    resp = await client.post(
        f"/admin/artisans/{artisan}/reject", json={"reason": "fake KBIS"}, headers=admin_auth
    )
    assert resp.status == 200
    await live_state_written(client.app)
    live = await redis.hgetall(key)
    assert (live["verified"], live["current_status"]) == ("0", "OFFLINE")

    await client.post(f"/admin/artisans/{artisan}/verify", headers=admin_auth)
    await live_state_written(client.app)
    assert (await redis.hgetall(key))["verified"] == "1"
    resp = await client.patch(
        "/artisan/profile",
        json={"specialty": "HEATING"},
        headers=bearer(token_for(settings, artisan, "ARTISAN")),
    )
    assert resp.status == 200
    await live_state_written(client.app)
    assert (await redis.hgetall(key))["specialty"] == "HEATING"
