"""Fixtures of the payments/storage tests: the app on a known port (so signed URLs
point at it), moto's S3 server over real HTTP, and the fake Stripe server."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aiobotocore.session import get_session
from aiohttp import web
from aiohttp.test_utils import TestClient

from core.settings import Settings
from tests.factories import create_user
from tests.ports import free_port
from tests.stripe_server import FakeStripe
from zendo.app import create_app

StartApp = Callable[[Settings], Awaitable[TestClient[Any, Any]]]
WEBHOOK_SECRET = "whsec_test_" + "s" * 24
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(200)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(300)
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + b"1 0 obj\n<<>>\nendobj\n" * 20


@pytest.fixture
async def start_app(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]], clean_state: None
) -> StartApp:
    """Start the app with `settings` on a free port that its public_base_url names."""

    async def start(settings: Settings) -> TestClient[Any, Any]:
        port = free_port()
        # No background loops (dispatcher, mirrors): these tests drive payments directly.
        app = create_app(
            settings.replace(public_base_url=f"http://127.0.0.1:{port}", run_background=False)
        )
        return await aiohttp_client(app, server_kwargs={"port": port})

    return start


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client without any login, like a browser following a link."""
    async with aiohttp.ClientSession() as session:
        yield session


async def send_upload(
    http: aiohttp.ClientSession, upload: dict[str, Any], data: bytes, content_type: str
) -> tuple[int, str]:
    """Send a file the way the apps do: PUT with headers, or POST multipart (fields, file)."""
    if upload["method"] == "PUT":
        headers = dict(upload["headers"])
        headers["Content-Type"] = content_type
        async with http.put(upload["url"], data=io.BytesIO(data), headers=headers) as resp:
            return resp.status, await resp.text()
    form = aiohttp.FormData()
    for name, value in upload["fields"].items():
        form.add_field(name, value)
    form.add_field("file", io.BytesIO(data), content_type=content_type, filename="upload")
    async with http.post(upload["url"], data=form) as resp:
        return resp.status, await resp.text()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
async def s3_settings(settings: Settings, moto_endpoint: str) -> Settings:
    """Settings for a fresh private bucket on the moto server."""
    s3 = settings.replace(
        storage="s3",
        s3_bucket=f"zendo-test-{uuid.uuid4().hex[:12]}",
        s3_endpoint=moto_endpoint,
        aws_region="us-east-1",
        aws_access_key_id="testing",
        aws_secret="testing",
    )
    async with get_session().create_client(
        "s3",
        region_name="us-east-1",
        endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ) as client:
        await client.create_bucket(Bucket=s3.s3_bucket)
    return s3


@pytest.fixture
async def fake_stripe() -> AsyncIterator[tuple[FakeStripe, str]]:
    fake = FakeStripe()
    runner = web.AppRunner(fake.make_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
def pay_settings(settings: Settings, fake_stripe: tuple[FakeStripe, str]) -> Settings:
    fake, base = fake_stripe
    return settings.replace(
        stripe_api_key=fake.api_key, stripe_webhook_secret=WEBHOOK_SECRET, stripe_api_base=base
    )


async def insert_intervention(
    db: Any,
    *,
    client_id: uuid.UUID,
    artisan_id: uuid.UUID | None,
    status: str = "ASSIGNED",
    specialty: str = "PLUMBER",
) -> uuid.UUID:
    """An intervention row as the dispatch lifecycle would leave it (no price yet)."""
    intervention_id: uuid.UUID = await db.fetchval(
        """INSERT INTO interventions (client_id, artisan_id, specialty, location, status, start_code)
           VALUES ($1, $2, $3, ST_SetSRID(ST_MakePoint(2.35, 48.85), 4326)::geography, $4, '1234')
           RETURNING id""",
        client_id,
        artisan_id,
        specialty,
        status,
    )
    return intervention_id


async def stripe_artisan(
    db: Any, fake: FakeStripe, *, specialty: str = "PLUMBER"
) -> tuple[uuid.UUID, str]:
    """A verified artisan with a Connect account the fake Stripe knows: (id, account)."""
    artisan = await create_user(db, role="ARTISAN", specialty=specialty)
    account = "acct_" + uuid.uuid4().hex[:10]
    fake.accounts[account] = {"id": account, "object": "account", "payouts_enabled": True}
    await db.execute(
        "UPDATE artisans SET stripe_account_id = $2, payouts_enabled = true WHERE user_id = $1",
        artisan,
        account,
    )
    return artisan, account


async def confirm_as_client_app(
    http: aiohttp.ClientSession, stripe_base: str, fake: FakeStripe, client_secret: str
) -> int:
    """What Stripe.js `confirmCardPayment(client_secret)` sends: the publishable key, the
    intent id taken from the secret, the secret itself and a card."""
    intent_id = client_secret.split("_secret_")[0]
    async with http.post(
        f"{stripe_base}/v1/payment_intents/{intent_id}/confirm",
        data={"client_secret": client_secret, "payment_method": "pm_card_visa"},
        headers={"Authorization": f"Bearer {fake.publishable_key}"},
    ) as resp:
        return resp.status
