"""Fixtures of the payments tests: the fake Stripe server and settings that use it,
an artisan with a Connect account, and what the client app sends to Stripe."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from core.settings import Settings
from tests.factories import create_user
from tests.stripe_server import FakeStripe

WEBHOOK_SECRET = "whsec_test_" + "s" * 24


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
