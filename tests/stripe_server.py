"""A small Stripe-compatible HTTP server for tests (the real `stripe` SDK talks to it).

It keeps state for the objects Zendo uses (accounts, account links, payment intents,
charges, refunds), enforces Stripe's state rules (capture only `requires_capture`,
cancel not after success, refund once), records every request with its idempotency
key, replays a duplicate key's first response, and queues the webhook events Stripe
would send; `deliver` posts them signed exactly as Stripe signs
(`Stripe-Signature: t=<ts>,v1=<hex hmac_sha256(secret, f"{t}.{payload}")>`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def _parse_form(text: str) -> dict[str, Any]:
    """Stripe's bracketed form encoding -> nested dicts (`a[b][c]=v`)."""
    out: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        parts = key.replace("]", "").split("[")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _bool(value: Any) -> bool:
    return str(value).lower() == "true"


class StripeFailure(Exception):
    def __init__(self, status: int, code: str, message: str, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.code, self.message, self.kind = status, code, message, kind


@dataclass
class RecordedRequest:
    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str | None
    replayed: bool = False
    by_client: bool = False  # sent with the publishable key (the client app)


@dataclass
class FakeStripe:
    api_key: str = "sk_test_zendo"
    # What a client app holds (Stripe.js / mobile SDK): it may only confirm a PaymentIntent
    # whose client_secret it presents.
    publishable_key: str = "pk_test_zendo"
    requests: list[RecordedRequest] = field(default_factory=list)
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    # Set to make the next N API calls fail with a 500 (network trouble at Stripe).
    fail_next: int = 0
    # Answers for the next API calls instead of handling them (e.g. a 403), in order.
    next_failures: list[StripeFailure] = field(default_factory=list)
    _idempotent: dict[str, tuple[str, int, dict[str, Any]]] = field(default_factory=dict)

    # -- helpers the tests use -----------------------------------------------------

    def calls(self, method: str, path_prefix: str) -> list[RecordedRequest]:
        return [
            r
            for r in self.requests
            if r.method == method and r.path.startswith(path_prefix) and not r.replayed
        ]

    def _event(self, type_: str, obj: dict[str, Any]) -> dict[str, Any]:
        event = {
            "id": "evt_" + secrets.token_hex(12),
            "object": "event",
            "api_version": "2025-01-01",
            "created": int(time.time()),
            "type": type_,
            "livemode": False,
            "pending_webhooks": 1,
            "data": {"object": json.loads(json.dumps(obj))},  # a snapshot, as Stripe sends
        }
        self.events.append(event)
        return event

    def complete_onboarding(self, account_id: str, payouts_enabled: bool = True) -> dict[str, Any]:
        account = self.accounts[account_id]
        account.update(
            payouts_enabled=payouts_enabled, charges_enabled=payouts_enabled, details_submitted=True
        )
        return self._event("account.updated", account)

    def confirm(self, intent_id: str) -> dict[str, Any]:
        """What the client's card confirmation (Stripe.js) does: authorise the amount."""
        intent = self.intents[intent_id]
        if intent["status"] != "requires_payment_method":
            raise StripeFailure(400, "payment_intent_unexpected_state", "cannot confirm")
        charge_id = "ch_" + secrets.token_hex(12)
        self.charges[charge_id] = {
            "id": charge_id,
            "object": "charge",
            "amount": intent["amount"],
            "currency": intent["currency"],
            "payment_intent": intent_id,
            "captured": False,
            "refunded": False,
            "amount_refunded": 0,
        }
        intent.update(
            status="requires_capture",
            latest_charge=charge_id,
            amount_capturable=intent["amount"],
            payment_method="pm_card_visa",
        )
        return self._event("payment_intent.amount_capturable_updated", intent)

    def post_calls(self) -> list[tuple[str, str | None]]:
        """(path, idempotency key) of every POST our server made (replays left out)."""
        return [(r.path, r.idempotency_key) for r in self.calls("POST", "/v1/") if not r.by_client]

    async def deliver(
        self,
        url: str,
        event: dict[str, Any],
        secret: str,
        *,
        timestamp: int | None = None,
        signature: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        payload = json.dumps(event, separators=(",", ":"))
        header = signature if signature is not None else sign(payload, secret, timestamp)
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                url,
                data=payload.encode(),
                headers={"Stripe-Signature": header, "Content-Type": "application/json"},
            ) as resp,
        ):
            return resp.status, await resp.json(content_type=None)

    # -- the API ---------------------------------------------------------------------

    def _intent(self, intent_id: str) -> dict[str, Any]:
        if intent_id not in self.intents:
            raise StripeFailure(404, "resource_missing", f"No such payment_intent: '{intent_id}'")
        return self.intents[intent_id]

    def _route(self, method: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        parts = path.strip("/").split("/")[1:]  # drop "v1"
        match method, parts:
            case "POST", ["accounts"]:
                acct = "acct_" + secrets.token_hex(8)
                self.accounts[acct] = {
                    "id": acct,
                    "object": "account",
                    "type": params.get("type", "express"),
                    "email": params.get("email"),
                    "country": params.get("country"),
                    "metadata": params.get("metadata", {}),
                    "payouts_enabled": False,
                    "charges_enabled": False,
                    "details_submitted": False,
                }
                return self.accounts[acct]
            case "GET", ["accounts", acct]:
                if acct not in self.accounts:
                    raise StripeFailure(404, "resource_missing", f"No such account: '{acct}'")
                return self.accounts[acct]
            case "POST", ["account_links"]:
                if params.get("account") not in self.accounts:
                    raise StripeFailure(400, "resource_missing", "No such account")
                now = int(time.time())
                return {
                    "object": "account_link",
                    "created": now,
                    "expires_at": now + 300,
                    "url": f"https://connect.stripe.test/setup/e/{params['account']}/{secrets.token_hex(8)}",
                }
            case "POST", ["payment_intents"]:
                return self._create_intent(params)
            case "GET", ["payment_intents", intent_id]:
                return self._intent(intent_id)
            case "POST", ["payment_intents", intent_id, "capture"]:
                intent = self._intent(intent_id)
                if intent["status"] != "requires_capture":
                    raise StripeFailure(
                        400,
                        "payment_intent_unexpected_state",
                        f"This PaymentIntent could not be captured because it has a status of {intent['status']}.",
                    )
                intent.update(
                    status="succeeded", amount_received=intent["amount"], amount_capturable=0
                )
                self.charges[intent["latest_charge"]]["captured"] = True
                self._event("payment_intent.succeeded", intent)
                return intent
            case "POST", ["payment_intents", intent_id, "cancel"]:
                intent = self._intent(intent_id)
                if intent["status"] in ("succeeded", "canceled"):
                    raise StripeFailure(
                        400,
                        "payment_intent_unexpected_state",
                        f"You cannot cancel this PaymentIntent because it has a status of {intent['status']}.",
                    )
                intent.update(status="canceled", amount_capturable=0, canceled_at=int(time.time()))
                self._event("payment_intent.canceled", intent)
                return intent
            case "POST", ["refunds"]:
                return self._refund(params)
            case "GET", ["charges", charge_id]:
                if charge_id not in self.charges:
                    raise StripeFailure(404, "resource_missing", f"No such charge: '{charge_id}'")
                return self.charges[charge_id]
        raise StripeFailure(404, "resource_missing", f"Unrecognized request URL ({method}: {path})")

    def _create_intent(self, params: dict[str, Any]) -> dict[str, Any]:
        destination = params.get("transfer_data", {}).get("destination")
        if destination is not None and destination not in self.accounts:
            raise StripeFailure(400, "resource_missing", f"No such destination: '{destination}'")
        intent_id = "pi_" + secrets.token_hex(12)
        self.intents[intent_id] = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": int(params["amount"]),
            "currency": params["currency"],
            "capture_method": params.get("capture_method", "automatic"),
            "application_fee_amount": int(params["application_fee_amount"])
            if "application_fee_amount" in params
            else None,
            "transfer_data": {"destination": destination} if destination else None,
            "metadata": params.get("metadata", {}),
            "status": "requires_payment_method",
            "client_secret": f"{intent_id}_secret_{secrets.token_hex(8)}",
            "latest_charge": None,
            "amount_capturable": 0,
            "amount_received": 0,
        }
        self._event("payment_intent.created", self.intents[intent_id])
        return self.intents[intent_id]

    def _refund(self, params: dict[str, Any]) -> dict[str, Any]:
        intent = self._intent(params.get("payment_intent", ""))
        if intent["status"] != "succeeded":
            raise StripeFailure(
                400, "charge_not_captured", "This PaymentIntent has no captured charge"
            )
        charge = self.charges[intent["latest_charge"]]
        if charge["refunded"]:
            raise StripeFailure(
                400, "charge_already_refunded", f"Charge {charge['id']} has already been refunded."
            )
        refund_id = "re_" + secrets.token_hex(12)
        self.refunds[refund_id] = {
            "id": refund_id,
            "object": "refund",
            "amount": charge["amount"],
            "charge": charge["id"],
            "payment_intent": intent["id"],
            "status": "succeeded",
            "reverse_transfer": _bool(params.get("reverse_transfer")),
            "refund_application_fee": _bool(params.get("refund_application_fee")),
        }
        charge.update(refunded=True, amount_refunded=charge["amount"])
        self._event("charge.refunded", charge)
        return self.refunds[refund_id]

    async def _client_confirm(self, request: web.Request) -> web.Response:
        """POST /v1/payment_intents/{id}/confirm with the publishable key, as Stripe.js
        does: the client_secret must be the intent's."""
        params = _parse_form(await request.text())
        intent_id = request.match_info["tail"].split("/")[1]
        intent = self.intents.get(intent_id)
        recorded = RecordedRequest("POST", request.path, params, None, by_client=True)
        self.requests.append(recorded)
        if intent is None or params.get("client_secret") != intent["client_secret"]:
            return self._error(
                StripeFailure(404, "resource_missing", f"No such payment_intent: '{intent_id}'")
            )
        try:
            self.confirm(intent_id)
        except StripeFailure as exc:
            return self._error(exc)
        return web.json_response({k: intent[k] for k in ("id", "object", "status")})

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") == f"Bearer {self.publishable_key}":
            parts = request.path.strip("/").split("/")
            if request.method == "POST" and len(parts) == 4 and parts[3] == "confirm":
                return await self._client_confirm(request)
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._error(
                StripeFailure(
                    401, "api_key_invalid", "Invalid API Key provided", "invalid_request_error"
                )
            )
        text = await request.text()
        params = _parse_form(text if request.method == "POST" else request.query_string)
        key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
        recorded = RecordedRequest(request.method, request.path, params, key)
        self.requests.append(recorded)
        fingerprint = f"{request.method} {request.path} {json.dumps(params, sort_keys=True)}"
        if key is not None and key in self._idempotent:
            first_fingerprint, status, body = self._idempotent[key]
            if first_fingerprint != fingerprint:
                return self._error(
                    StripeFailure(
                        400,
                        "idempotency_key_in_use",
                        "Keys for idempotent requests can only be used with the same parameters",
                        "idempotency_error",
                    )
                )
            recorded.replayed = True
            return web.json_response(body, status=status, headers={"Idempotent-Replayed": "true"})
        if self.fail_next > 0:
            self.fail_next -= 1
            return self._error(StripeFailure(500, "api_error", "Stripe had a problem", "api_error"))
        if self.next_failures:
            return self._error(self.next_failures.pop(0))
        try:
            status, body = (
                200,
                json.loads(json.dumps(self._route(request.method, request.path, params))),
            )
        except StripeFailure as exc:
            status, body = (
                exc.status,
                {"error": {"type": exc.kind, "code": exc.code, "message": exc.message}},
            )
        if key is not None:
            self._idempotent[key] = (fingerprint, status, body)
        return web.json_response(
            body, status=status, headers={"Request-Id": "req_" + secrets.token_hex(6)}
        )

    @staticmethod
    def _error(exc: StripeFailure) -> web.Response:
        return web.json_response(
            {"error": {"type": exc.kind, "code": exc.code, "message": exc.message}},
            status=exc.status,
        )

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/v1/{tail:.*}", self.handle)
        return app
