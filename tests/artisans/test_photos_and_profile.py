"""Intervention photos (assigned artisan only) and the artisan profile."""

from __future__ import annotations

import aiohttp
import asyncpg

from core.settings import Settings
from tests.factories import bearer, create_user, insert_intervention, token_for
from tests.helpers import JPEG, PNG, StartApp, send_upload


async def test_assigned_artisan_uploads_before_and_after_photos(
    start_app: StartApp, settings: Settings, db: asyncpg.Connection, http: aiohttp.ClientSession
) -> None:
    client = await start_app(settings)
    artisan = await create_user(db, role="ARTISAN")
    other = await create_user(db, role="ARTISAN")
    customer = await create_user(db, role="CLIENT")
    stranger = await create_user(db, role="CLIENT")
    job = await insert_intervention(
        db, client_id=customer, artisan_id=artisan, status="IN_PROGRESS"
    )
    auth = bearer(token_for(settings, artisan, "ARTISAN"))

    resp = await client.post(
        f"/interventions/{job}/photos",
        json={"phase": "BEFORE", "content_type": "image/jpeg", "size_bytes": len(JPEG)},
        headers=auth,
    )
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert (await send_upload(http, created["upload"], JPEG, "image/jpeg"))[0] == 204
    complete = f"/interventions/{job}/photos/{created['photo_id']}/complete"
    assert (
        await client.post(complete, headers=bearer(token_for(settings, other, "ARTISAN")))
    ).status == 404
    resp = await client.post(complete, headers=auth)
    assert resp.status == 200
    assert (await resp.json())["status"] == "UPLOADED"

    # The client sees them with working links; a stranger does not.
    resp = await client.get(
        f"/interventions/{job}/photos", headers=bearer(token_for(settings, customer, "CLIENT"))
    )
    photos = await resp.json()
    assert [p["phase"] for p in photos] == ["BEFORE"]
    async with http.get(photos[0]["download_url"]) as dl:
        assert await dl.read() == JPEG
    resp = await client.get(
        f"/interventions/{job}/photos", headers=bearer(token_for(settings, stranger, "CLIENT"))
    )
    assert resp.status == 404

    # Another artisan, the client, bad bodies and PDFs are refused.
    body = {"phase": "AFTER", "content_type": "image/png", "size_bytes": len(PNG)}
    resp = await client.post(
        f"/interventions/{job}/photos",
        json=body,
        headers=bearer(token_for(settings, other, "ARTISAN")),
    )
    assert resp.status == 404
    resp = await client.post(
        f"/interventions/{job}/photos",
        json=body,
        headers=bearer(token_for(settings, customer, "CLIENT")),
    )
    assert resp.status == 403
    for bad in (
        {**body, "content_type": "application/pdf"},
        {**body, "phase": "DURING"},
        {**body, "size_bytes": 11 * 1024 * 1024},
    ):
        resp = await client.post(f"/interventions/{job}/photos", json=bad, headers=auth)
        assert resp.status == 422, bad

    # A wrong magic number on a photo is caught like on documents.
    resp = await client.post(f"/interventions/{job}/photos", json=body, headers=auth)
    created = await resp.json()
    await send_upload(http, created["upload"], JPEG[: len(PNG)], "image/png")
    resp = await client.post(
        f"/interventions/{job}/photos/{created['photo_id']}/complete", headers=auth
    )
    assert (resp.status, (await resp.json())["code"]) == (422, "magic_mismatch")


async def test_no_photos_on_a_cancelled_job(
    start_app: StartApp, settings: Settings, db: asyncpg.Connection
) -> None:
    client = await start_app(settings)
    artisan = await create_user(db, role="ARTISAN")
    customer = await create_user(db, role="CLIENT")
    job = await insert_intervention(db, client_id=customer, artisan_id=artisan, status="CANCELLED")
    resp = await client.post(
        f"/interventions/{job}/photos",
        json={"phase": "BEFORE", "content_type": "image/png", "size_bytes": 10},
        headers=bearer(token_for(settings, artisan, "ARTISAN")),
    )
    assert resp.status == 409
    assert (await resp.json())["code"] == "intervention_not_active"


async def test_profile_read_and_patch(
    start_app: StartApp, settings: Settings, db: asyncpg.Connection
) -> None:
    client = await start_app(settings)
    artisan = await create_user(db, role="ARTISAN", lat=48.86, lon=2.35, specialty="PLUMBER")
    auth = bearer(token_for(settings, artisan, "ARTISAN"))
    resp = await client.get("/artisan/profile", headers=auth)
    assert resp.status == 200
    profile = await resp.json()
    assert profile["user_id"] == str(artisan)
    assert profile["location"] == {"lat": 48.86, "lon": 2.35}
    assert profile["specialty"] == "PLUMBER"
    assert profile["payouts_enabled"] is False
    assert set(profile) >= {"status", "current_status", "level", "rating"}

    resp = await client.patch(
        "/artisan/profile",
        json={"specialty": "GLAZIER", "phone_number": "+33612345678"},
        headers=auth,
    )
    assert resp.status == 200
    body = await resp.json()
    assert (body["specialty"], body["phone_number"]) == ("GLAZIER", "+33612345678")
    assert (
        await db.fetchval("SELECT specialty FROM artisans WHERE user_id = $1", artisan) == "GLAZIER"
    )
    # a new trade needs a new review: VERIFIED goes back to PENDING (and OFFLINE)
    assert (body["status"], body["current_status"]) == ("PENDING", "OFFLINE")
    await db.execute("UPDATE artisans SET status = 'VERIFIED' WHERE user_id = $1", artisan)
    resp = await client.patch("/artisan/profile", json={"specialty": "GLAZIER"}, headers=auth)
    assert (await resp.json())["status"] == "VERIFIED"  # the same trade: no new review
    resp = await client.patch("/artisan/profile", json={"phone_number": None}, headers=auth)
    assert (await resp.json())["phone_number"] is None

    for bad in (
        {"specialty": "ASTRONAUT"},
        {"phone_number": "call me"},
        {"status": "VERIFIED"},
        {"rating": 5},
    ):
        resp = await client.patch("/artisan/profile", json=bad, headers=auth)
        assert resp.status == 422, bad
    assert (await client.patch("/artisan/profile", data=b"{nope", headers=auth)).status == 400

    await db.execute("UPDATE artisans SET current_status = 'BUSY' WHERE user_id = $1", artisan)
    resp = await client.patch("/artisan/profile", json={"specialty": "PLUMBER"}, headers=auth)
    assert resp.status == 409
    assert (await resp.json())["code"] == "artisan_busy"
    # The phone number can still change during a job.
    resp = await client.patch("/artisan/profile", json={"phone_number": "0612345678"}, headers=auth)
    assert resp.status == 200
