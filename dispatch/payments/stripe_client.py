"""The few Stripe calls Zendo makes, through the real `stripe` SDK's async API.

One `stripe.StripeClient` per app, with the SDK's aiohttp transport on a session we
own (created and closed in the payments cleanup_ctx). Every POST carries an
idempotency key derived from our own ids, so a retry never charges twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import stripe

from core.settings import Settings

_TIMEOUT = aiohttp.ClientTimeout(total=15, connect=5)


class StripeApi:
    def __init__(self, client: stripe.StripeClient) -> None:
        self.client = client

    @staticmethod
    def _opts(idempotency_key: str) -> Any:
        return {"idempotency_key": idempotency_key}

    async def create_account(self, params: dict[str, Any], *, idempotency_key: str) -> Any:
        return await self.client.v1.accounts.create_async(
            params=params,  # type: ignore[arg-type]
            options=self._opts(idempotency_key),
        )

    async def retrieve_account(self, account_id: str) -> Any:
        return await self.client.v1.accounts.retrieve_async(account_id)

    async def create_account_link(self, params: dict[str, Any], *, idempotency_key: str) -> Any:
        return await self.client.v1.account_links.create_async(
            params=params,  # type: ignore[arg-type]
            options=self._opts(idempotency_key),
        )

    async def create_payment_intent(self, params: dict[str, Any], *, idempotency_key: str) -> Any:
        return await self.client.v1.payment_intents.create_async(
            params=params,  # type: ignore[arg-type]
            options=self._opts(idempotency_key),
        )

    async def retrieve_payment_intent(self, intent_id: str) -> Any:
        return await self.client.v1.payment_intents.retrieve_async(intent_id)

    async def capture_payment_intent(self, intent_id: str, *, idempotency_key: str) -> Any:
        return await self.client.v1.payment_intents.capture_async(
            intent_id, options=self._opts(idempotency_key)
        )

    async def cancel_payment_intent(self, intent_id: str, *, idempotency_key: str) -> Any:
        return await self.client.v1.payment_intents.cancel_async(
            intent_id, options=self._opts(idempotency_key)
        )

    async def refund_payment_intent(self, intent_id: str, *, idempotency_key: str) -> Any:
        # Reverse the transfer to the artisan and return the platform fee too.
        return await self.client.v1.refunds.create_async(
            params={
                "payment_intent": intent_id,
                "reverse_transfer": True,
                "refund_application_fee": True,
            },
            options=self._opts(idempotency_key),
        )

    async def retrieve_charge(self, charge_id: str) -> Any:
        return await self.client.v1.charges.retrieve_async(charge_id)

    def construct_event(self, payload: str, signature: str, secret: str) -> Any:
        return self.client.construct_event(payload, signature, secret, tolerance=300)


@asynccontextmanager
async def stripe_api(settings: Settings) -> AsyncIterator[StripeApi]:
    async with aiohttp.ClientSession(timeout=_TIMEOUT) as session:
        base_addresses: Any = (
            {"api": settings.stripe_api_base.rstrip("/")} if settings.stripe_api_base else None
        )
        client = stripe.StripeClient(
            settings.stripe_api_key,
            base_addresses=base_addresses,
            http_client=stripe.AIOHTTPClient(session=session, timeout=_TIMEOUT),
            max_network_retries=2,
        )
        yield StripeApi(client)
