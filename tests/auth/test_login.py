"""POST /auth/login: credentials, timing, the 72-byte rule and rate limiting (CONTRACT §2)."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from core.settings import Settings
from dispatch.auth import passwords
from tests.factories import DEFAULT_PASSWORD, create_user
from tests.helpers import PASSWORD, login, register

Client = TestClient[Any, Any]


async def test_login_returns_a_new_session(client: Client, db: asyncpg.Connection) -> None:
    reg = await register(client, email="ada@example.com")
    status, body = await login(client, "ada@example.com")
    assert status == 200
    assert body["user"] == reg["user"]
    assert body["refresh_token"] != reg["refresh_token"]
    # each login starts its own refresh-token family
    assert await db.fetchval("SELECT count(*) FROM refresh_token_families") == 2


async def test_login_email_is_case_insensitive(client: Client) -> None:
    await register(client, email="Mixed.Case@Example.com")
    status, _ = await login(client, "MIXED.case@EXAMPLE.COM")
    assert status == 200


async def test_unknown_email_and_wrong_password_get_the_same_answer(client: Client) -> None:
    await register(client, email="known@example.com")
    s1, unknown = await login(client, "nobody@example.com")
    s2, wrong = await login(client, "known@example.com", "wrong-password")
    assert s1 == s2 == 401
    assert unknown == wrong
    assert unknown["code"] == "invalid_credentials"


async def test_unknown_email_takes_about_as_long_as_wrong_password(client: Client) -> None:
    await register(client, email="known@example.com")

    async def timed(email: str) -> float:
        start = time.perf_counter()
        status, _ = await login(client, email, "wrong-password")
        assert status == 401
        return time.perf_counter() - start

    unknown, wrong = [], []
    for _ in range(4):  # 8 attempts: under the 10/min limit
        unknown.append(await timed("nobody@example.com"))
        wrong.append(await timed("known@example.com"))
    ratio = statistics.median(unknown) / statistics.median(wrong)
    # both run one bcrypt verification (~tens of ms); without the dummy hash an
    # unknown email would answer in about 1 ms
    assert 0.3 < ratio < 3.0, (unknown, wrong)


async def test_passwords_differing_after_byte_72_are_different(client: Client) -> None:
    prefix = "p" * 72
    await register(client, email="long@example.com", password=prefix + "A")
    status, _ = await login(client, "long@example.com", prefix + "B")
    assert status == 401
    status, _ = await login(client, "long@example.com", prefix)
    assert status == 401
    status, _ = await login(client, "long@example.com", prefix + "A")
    assert status == 200


async def test_multibyte_password_beyond_72_bytes(client: Client) -> None:
    # 40 characters, 120 bytes: would be truncated (or refused) by plain bcrypt
    pw = "€" * 39 + "a"
    await register(client, email="euro@example.com", password=pw)
    assert (await login(client, "euro@example.com", "€" * 39 + "b"))[0] == 401
    assert (await login(client, "euro@example.com", pw))[0] == 200


def test_hash_scheme_counts_every_byte_and_salts() -> None:
    a = passwords.hash_password_sync("x" * 72 + "1", 10)
    assert a.startswith(passwords.SCHEME_PREFIX)
    assert passwords.verify_password_sync("x" * 72 + "1", a)
    assert not passwords.verify_password_sync("x" * 72 + "2", a)
    assert a != passwords.hash_password_sync("x" * 72 + "1", 10)  # salted
    assert not passwords.verify_password_sync("anything", "not-a-hash")


async def test_plain_bcrypt_hashes_from_factories_still_verify(
    client: Client, db: asyncpg.Connection
) -> None:
    await create_user(db, email="legacy@example.com")
    assert (await login(client, "legacy@example.com", DEFAULT_PASSWORD))[0] == 200
    assert (await login(client, "legacy@example.com", "wrong-password"))[0] == 401
    # a plain hash cannot match a password over 72 bytes (bcrypt would truncate it)
    assert (await login(client, "legacy@example.com", DEFAULT_PASSWORD + "y" * 60))[0] == 401


async def test_bcrypt_runs_off_the_event_loop(client: Client) -> None:
    """While a login hashes, the loop keeps serving other requests."""
    await register(client, email="loop@example.com")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.create_task(ticker())
    start = time.perf_counter()
    assert (await login(client, "loop@example.com"))[0] == 200
    elapsed = time.perf_counter() - start
    task.cancel()
    # a blocked loop would tick ~0 times during the bcrypt work
    assert ticks >= 0.5 * elapsed / 0.005 - 2


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "a@b.co"}, "password"),
        ({"password": PASSWORD}, "email"),
        ({"email": "a@b.co", "password": 12345678}, "password"),
        ({"email": "a@b.co", "password": "x" * 129}, "password"),
        ({"email": "a" * 255, "password": PASSWORD}, "email"),
    ],
)
async def test_invalid_login_fields_are_422(
    client: Client, payload: dict[str, Any], field: str
) -> None:
    resp = await client.post("/auth/login", json=payload)
    assert resp.status == 422
    assert [e["field"] for e in (await resp.json())["errors"]] == [field]


async def test_malformed_login_json_is_400(client: Client) -> None:
    resp = await client.post(
        "/auth/login", data=b'{"email":', headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400


async def test_login_is_rate_limited_per_account(client: Client) -> None:
    """Attempts on one account from two IPs share the account's window."""
    await register(client, email="target@example.com")
    other_ip = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=other_ip) as session:
        for i in range(10):
            c = client if i % 2 == 0 else None
            if c is not None:
                status, _ = await login(c, "target@example.com", "wrong-password")
            else:
                resp = await session.post(
                    client.make_url("/auth/login"),
                    json={"email": "target@example.com", "password": "wrong-password"},
                )
                status = resp.status
            assert status == 401
        # the 11th attempt, even with the right password and from either IP
        resp = await session.post(
            client.make_url("/auth/login"),
            json={"email": "TARGET@example.com", "password": PASSWORD},
        )
        assert resp.status == 429
        assert 1 <= int(resp.headers["Retry-After"]) <= 60
        assert (await resp.json())["code"] == "rate_limited"
        # another account from the second IP (5 attempts so far there) still works
        await register(client, email="other@example.com")
        resp = await session.post(
            client.make_url("/auth/login"),
            json={"email": "other@example.com", "password": PASSWORD},
        )
        assert resp.status == 200


async def test_login_is_rate_limited_per_ip(client: Client) -> None:
    await register(client, email="real@example.com")
    for i in range(10):
        status, _ = await login(client, f"user{i}@example.com", "wrong-password")
        assert status == 401
    resp = await client.post(
        "/auth/login", json={"email": "real@example.com", "password": PASSWORD}
    )
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) >= 1
    # a different IP is not affected, for the same account
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    ) as session:
        resp = await session.post(
            client.make_url("/auth/login"),
            json={"email": "real@example.com", "password": PASSWORD},
        )
        assert resp.status == 200


async def test_login_fails_closed_without_redis(
    settings: Settings, client: Client, aiohttp_client: Any
) -> None:
    from zendo.app import create_app

    app = create_app(settings.replace(redis_url="redis://127.0.0.1:1/0"))
    no_redis = await aiohttp_client(app)
    await register(client, email="solo@example.com")
    # Registration is rate limited too: without Redis it fails closed as well.
    resp = await no_redis.post(
        "/auth/register",
        json={"email": "other@example.com", "password": PASSWORD, "role": "CLIENT"},
    )
    assert resp.status == 503
    resp = await no_redis.post(
        "/auth/login", json={"email": "solo@example.com", "password": PASSWORD}
    )
    assert resp.status == 503
    assert resp.content_type == "application/problem+json"
