"""The ops console in headless Chromium (Debian's, installed by `make setup`), driven by
Playwright, against two real server processes: the page talks to one, the artisans
and the client to the other, so everything it shows crossed processes."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from playwright.async_api import Page, async_playwright, expect

from core.settings import Settings
from tests.factories import (
    DEFAULT_PASSWORD,
    bearer,
    create_user,
    insert_intervention,
    token_for,
)
from tests.gateway.conftest import fix, recv_type
from tests.gateway.processes import start_server, stop, wait_healthy
from tests.ports import free_port

CHROMIUM = Path("/usr/bin/chromium")
# The bound: the page shows each change within 2 s of it.
SHOWN_WITHIN_MS = 2000
SEEDED = [(48.8566 + i * 0.01, 2.3522 + i * 0.012) for i in range(5)]

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def servers(
    settings: Settings, clean_state: None, tmp_path: Path
) -> AsyncIterator[tuple[int, int]]:
    ports = (free_port(), free_port())
    procs: list[subprocess.Popen[bytes]] = [
        start_server(settings, port, tmp_path / f"server-{port}.log") for port in ports
    ]
    try:
        for port in ports:
            await wait_healthy(port)
        yield ports
    finally:
        for proc in procs:
            stop(proc)


@pytest.fixture
def chromium() -> Path:
    assert CHROMIUM.exists(), "make setup installs Debian's chromium (scripts/ensure-chromium.sh)"
    return CHROMIUM


@pytest.fixture
async def page(chromium: Path) -> AsyncIterator[Page]:
    async with async_playwright() as pw:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
        browser = await pw.chromium.launch(
            executable_path=str(chromium), headless=True, args=["--no-sandbox"]
        )
        try:
            context = await browser.new_context(viewport={"width": 1500, "height": 900})
            yield await context.new_page()
        finally:
            await browser.close()


async def _sign_in(page: Page, base: str, email: str) -> Any:
    response = await page.goto(f"{base}/console")
    assert response is not None and response.status == 200
    await page.get_by_test_id("login-email").fill(email)
    await page.get_by_test_id("login-password").fill(DEFAULT_PASSWORD)
    await page.get_by_test_id("login-submit").click()
    return response


async def test_console_shows_the_fleet_and_a_job_moving_through_its_statuses(
    servers: tuple[int, int],
    page: Page,
    db: asyncpg.Connection,
    settings: Settings,
    tmp_path: Path,
) -> None:
    console_port, api_port = servers
    console, api = f"http://127.0.0.1:{console_port}", f"http://127.0.0.1:{api_port}"
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security" in m.text else None)

    admin_email = f"ops-{uuid.uuid4().hex[:8]}@example.com"
    await create_user(db, role="ADMIN", email=admin_email)
    artisans = []
    for lat, lon in SEEDED:
        uid = await create_user(db, role="ARTISAN", specialty="PLUMBER", lat=lat, lon=lon)
        artisans.append((uid, token_for(settings, uid, "ARTISAN")))
    client_id = await create_user(db, role="CLIENT")
    client_auth = bearer(token_for(settings, client_id, "CLIENT"))

    async with aiohttp.ClientSession() as http:
        sockets = []
        for (_uid, token), (lat, lon) in zip(artisans, SEEDED, strict=True):
            ws = await http.ws_connect(f"{api}/ws", headers=bearer(token))
            await recv_type(ws, "hello")
            await ws.send_json(fix(lat, lon))
            sockets.append(ws)

        response = await _sign_in(page, console, admin_email)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "connect-src 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        markers = page.locator('[data-testid="artisan-marker"][data-status="ONLINE"]')
        await expect(markers).to_have_count(len(SEEDED), timeout=10_000)
        ids = {await m.get_attribute("data-artisan-id") for m in await markers.all()}
        assert ids == {str(uid) for uid, _t in artisans}
        await expect(page.get_by_test_id("map")).to_be_visible()

        # The nearest artisan is offered the job; each step must show within 2 s.
        resp = await http.post(
            f"{api}/interventions",
            json={"specialty": "PLUMBER", "lat": SEEDED[0][0], "lon": SEEDED[0][1]},
            headers=client_auth,
        )
        assert resp.status == 201, await resp.text()
        job = await resp.json()
        row = page.locator(f'[data-testid="job-row"][data-intervention-id="{job["id"]}"]')
        await expect(row).to_have_attribute("data-status", "SEARCHING", timeout=SHOWN_WITHIN_MS)

        artisan_id, artisan_token = artisans[0]
        offer = await recv_type(sockets[0], "offer")
        await sockets[0].send_json({"type": "offer.accept", "offer_id": offer["offer_id"]})
        await recv_type(sockets[0], "ack")
        await expect(row).to_have_attribute("data-status", "ASSIGNED", timeout=SHOWN_WITHIN_MS)
        busy = page.locator(f'[data-testid="artisan-marker"][data-artisan-id="{artisan_id}"]')
        await expect(busy).to_have_attribute("data-status", "BUSY", timeout=SHOWN_WITHIN_MS)

        for status in ("EN_ROUTE", "ARRIVED", "IN_PROGRESS"):
            body: dict[str, Any] = {"status": status}
            if status == "IN_PROGRESS":
                body["start_code"] = job["start_code"]
            resp = await http.post(
                f"{api}/interventions/{job['id']}/status",
                json=body,
                headers=bearer(artisan_token),
            )
            assert resp.status == 200, await resp.text()
            await expect(row).to_have_attribute("data-status", status, timeout=SHOWN_WITHIN_MS)

        await row.click()
        timeline = page.get_by_test_id("timeline")
        await expect(timeline.locator("li")).to_have_count(
            7
        )  # created, offer sent + accepted, 4 moves
        await expect(timeline.locator('li[data-kind="offer.accepted"]')).to_have_count(1)
        await expect(page.get_by_test_id("kpi-jobs_created")).to_contain_text("1")
        await expect(page.get_by_test_id("kpi-jobs_assigned")).to_contain_text("1")

        resp = await http.post(
            f"{api}/interventions/{job['id']}/status",
            json={"status": "COMPLETED"},
            headers=bearer(artisan_token),
        )
        assert resp.status == 200
        await expect(row).to_have_count(0, timeout=SHOWN_WITHIN_MS)  # no longer open
        await expect(timeline.locator("li")).to_have_count(8)

        shot = tmp_path / "console.png"
        await page.screenshot(path=str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

        # A reload keeps the session: the refresh cookie (web-client flow) signs back in.
        await page.reload()
        await expect(page.get_by_test_id("artisan-marker")).to_have_count(
            len(SEEDED), timeout=10_000
        )
        for ws in sockets:
            await ws.close()
    assert blocked == []


async def test_console_refuses_non_admins(
    servers: tuple[int, int], page: Page, db: asyncpg.Connection
) -> None:
    email = f"client-{uuid.uuid4().hex[:8]}@example.com"
    await create_user(db, role="CLIENT", email=email)
    await _sign_in(page, f"http://127.0.0.1:{servers[0]}", email)
    await expect(page.locator("#login-error")).to_contain_text("Only ADMIN")
    await expect(page.get_by_test_id("map")).to_be_hidden()


async def test_console_reviews_pending_artisans_and_cancels_jobs(
    servers: tuple[int, int], page: Page, db: asyncpg.Connection, settings: Settings
) -> None:
    console = f"http://127.0.0.1:{servers[0]}"
    admin_email = f"ops-{uuid.uuid4().hex[:8]}@example.com"
    await create_user(db, role="ADMIN", email=admin_email)
    keen = await create_user(db, role="ARTISAN", artisan_status="PENDING")
    doubtful = await create_user(db, role="ARTISAN", artisan_status="PENDING")
    await db.execute(
        """INSERT INTO artisan_documents
             (artisan_id, kind, content_type, size_bytes, storage_key, status, uploaded_at)
           VALUES ($1, 'KBIS', 'application/pdf', 1000, $2, 'UPLOADED', now())""",
        keen,
        f"documents/{keen}/kbis.pdf",
    )
    # An assigned job (as dispatch leaves it): the admin may cancel it.
    worker = await create_user(db, role="ARTISAN")
    client_id = await create_user(db, role="CLIENT")
    job_id = await insert_intervention(db, client_id=client_id, artisan_id=worker)

    await _sign_in(page, console, admin_email)
    pending = page.get_by_test_id("pending-artisan")
    await expect(pending).to_have_count(2)
    keen_item = pending.and_(page.locator(f'[data-artisan-id="{keen}"]'))
    await keen_item.get_by_role("button", name="documents").click()  # links minted on demand
    link = keen_item.get_by_role("link", name="KBIS")
    await expect(link).to_have_count(1)
    assert "/storage/" in (await link.get_attribute("href") or "")
    await keen_item.get_by_role("button", name="verify").click()
    await expect(keen_item).to_have_count(0)
    doubtful_item = pending.and_(page.locator(f'[data-artisan-id="{doubtful}"]'))
    await doubtful_item.get_by_role("button", name="reject").click()  # no reason: refused
    await expect(doubtful_item).to_have_count(1)
    await doubtful_item.get_by_placeholder("reason to reject").fill("documents missing")
    await doubtful_item.get_by_role("button", name="reject").click()
    await expect(pending).to_have_count(0)
    rows = await db.fetch("SELECT user_id, status FROM artisans WHERE user_id <> $1", worker)
    assert dict(rows) == {keen: "VERIFIED", doubtful: "REJECTED"}

    row = page.locator(f'[data-testid="job-row"][data-intervention-id="{job_id}"]')
    await expect(row).to_have_attribute("data-status", "ASSIGNED")
    await row.get_by_role("button", name="cancel").click()
    await row.get_by_role("button", name="confirm").click()  # a second click confirms
    await expect(row).to_have_count(0, timeout=SHOWN_WITHIN_MS)
    status = await db.fetchval("SELECT status FROM interventions WHERE id = $1", job_id)
    assert status == "CANCELLED"
