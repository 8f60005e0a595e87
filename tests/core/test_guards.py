"""Access tokens and role guards (CONTRACT §2), on a small app that mounts guarded handlers."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from core import appkeys, tokens
from core.errors import Unauthorized
from core.guards import authenticate, requires_auth, requires_role, role_prefix_middleware
from core.settings import Settings
from tests.factories import bearer, token_for
from tests.helpers import register
from zendo.middleware import error_middleware

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


async def _whoami(request: web.Request) -> web.Response:
    principal = authenticate(request)
    return web.json_response({"user_id": str(principal.user_id), "role": principal.role})


@requires_role("ADMIN")
async def _admin_only(request: web.Request) -> web.Response:
    return await _whoami(request)


@requires_role("CLIENT", "ARTISAN")
async def _client_or_artisan(request: web.Request) -> web.Response:
    return await _whoami(request)


@requires_auth
async def _anyone(request: web.Request) -> web.Response:
    return await _whoami(request)


async def _public(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


@pytest.fixture
async def guarded(settings: Settings, aiohttp_client: MakeClient) -> Client:
    app = web.Application(middlewares=[error_middleware, role_prefix_middleware])
    app[appkeys.SETTINGS] = settings
    # prefix-guarded routes carry no decorator: the middleware alone protects them
    app.router.add_get("/admin/ping", _whoami)
    app.router.add_get("/artisan/ping", _whoami)
    app.router.add_get("/decorated/admin", _admin_only)
    app.router.add_get("/decorated/people", _client_or_artisan)
    app.router.add_get("/decorated/anyone", _anyone)
    app.router.add_get("/public", _public)
    return await aiohttp_client(app)


def _tok(settings: Settings, role: str) -> dict[str, str]:
    return bearer(token_for(settings, uuid.uuid4(), role))


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/admin/ping", {"ADMIN"}),
        ("/artisan/ping", {"ARTISAN"}),
        ("/decorated/admin", {"ADMIN"}),
        ("/decorated/people", {"CLIENT", "ARTISAN"}),
        ("/decorated/anyone", {"CLIENT", "ARTISAN", "ADMIN"}),
    ],
)
async def test_roles(guarded: Client, settings: Settings, path: str, allowed: set[str]) -> None:
    for role in ("CLIENT", "ARTISAN", "ADMIN"):
        resp = await guarded.get(path, headers=_tok(settings, role))
        if role in allowed:
            assert resp.status == 200, (path, role)
            assert (await resp.json())["role"] == role
        else:
            assert resp.status == 403, (path, role)
            assert resp.content_type == "application/problem+json"
            assert (await resp.json())["code"] == "forbidden"


@pytest.mark.parametrize(
    "path", ["/admin/ping", "/artisan/ping", "/decorated/admin", "/decorated/anyone"]
)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer  "},
    ],
)
async def test_no_token_is_401_with_www_authenticate(
    guarded: Client, path: str, headers: dict[str, str]
) -> None:
    resp = await guarded.get(path, headers=headers)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert resp.content_type == "application/problem+json"


async def test_unguarded_route_is_open(guarded: Client) -> None:
    assert (await guarded.get("/public")).status == 200


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "sub": str(uuid.uuid4()),
        "role": "ADMIN",
        "typ": "access",
        "iat": now,
        "exp": now + 900,
        "jti": "abc",
        "iss": "zendo",
        "aud": "zendo-api",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _bad_tokens(settings: Settings) -> dict[str, str]:
    key = settings.jwt_secret
    return {
        "alg none": _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(_claims()) + ".",
        "alg None": _b64({"alg": "None", "typ": "JWT"}) + "." + _b64(_claims()) + ".",
        "wrong key": jwt.encode(_claims(), "another-secret-" + "y" * 40, algorithm="HS256"),
        "HS512": jwt.encode(_claims(), key + "z" * 32, algorithm="HS512"),
        "expired": jwt.encode(_claims(exp=int(time.time()) - 5), key, algorithm="HS256"),
        "refresh typ": jwt.encode(_claims(typ="refresh"), key, algorithm="HS256"),
        "no typ": jwt.encode(_claims(typ=None), key, algorithm="HS256"),
        "wrong aud": jwt.encode(_claims(aud="other"), key, algorithm="HS256"),
        "wrong iss": jwt.encode(_claims(iss="evil"), key, algorithm="HS256"),
        "unknown role": jwt.encode(_claims(role="ROOT"), key, algorithm="HS256"),
        "bad sub": jwt.encode(_claims(sub="not-a-uuid"), key, algorithm="HS256"),
        "no exp": jwt.encode(_claims(exp=None), key, algorithm="HS256"),
        "tampered": _tamper(jwt.encode(_claims(role="CLIENT"), key, algorithm="HS256")),
        "garbage": "not.a.jwt",
    }


def _tamper(token: str) -> str:
    header, _, sig = token.split(".")
    return f"{header}.{_b64(_claims(role='ADMIN'))}.{sig}"


async def test_bad_access_tokens_are_401(guarded: Client, settings: Settings) -> None:
    for name, token in _bad_tokens(settings).items():
        for path in ("/admin/ping", "/decorated/anyone"):
            resp = await guarded.get(path, headers=bearer(token))
            assert resp.status == 401, (name, path)
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    # the control: a good token passes
    resp = await guarded.get(
        "/admin/ping", headers=bearer(jwt.encode(_claims(), settings.jwt_secret))
    )
    assert resp.status == 200


async def test_expired_token_says_so(guarded: Client, settings: Settings) -> None:
    token = token_for(settings, uuid.uuid4(), "CLIENT", ttl_s=-1)
    resp = await guarded.get("/decorated/anyone", headers=bearer(token))
    assert resp.status == 401
    assert (await resp.json())["code"] == "token_expired"


async def test_refresh_token_is_not_an_access_token(client: Client) -> None:
    reg = await register(client)
    resp = await client.get("/auth/me", headers=bearer(reg["refresh_token"]))
    assert resp.status == 401
    resp = await client.get("/auth/me", headers=bearer(reg["access_token"]))
    assert resp.status == 200


async def test_real_app_guards_admin_and_artisan_prefixes(
    client: Client, settings: Settings
) -> None:
    """Every /admin/* and /artisan/* path answers 401/403 before routing, even unknown ones."""
    for path, role in (("/admin/anything", "ADMIN"), ("/artisan/anything", "ARTISAN")):
        resp = await client.get(path)
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        wrong = "CLIENT"
        resp = await client.get(path, headers=_tok(settings, wrong))
        assert resp.status == 403
        resp = await client.get(path, headers=_tok(settings, role))
        assert resp.status in (404, 405)  # past the guard


async def test_token_of_a_deleted_user_is_401_on_me(client: Client, settings: Settings) -> None:
    resp = await client.get("/auth/me", headers=_tok(settings, "CLIENT"))
    assert resp.status == 401


async def test_a_cached_token_expires_like_a_fresh_one(
    guarded: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verified tokens are cached; the cache must not outlive the token's exp."""
    token = jwt.encode(_claims(role="CLIENT", exp=int(time.time()) + 60), settings.jwt_secret)
    for _ in range(2):  # the second request is a cache hit
        resp = await guarded.get("/decorated/anyone", headers=bearer(token))
        assert resp.status == 200
    assert (settings.jwt_secret, token) in tokens._verified
    later = time.time() + 61
    monkeypatch.setattr("core.tokens.time.time", lambda: later)
    resp = await guarded.get("/decorated/anyone", headers=bearer(token))
    assert resp.status == 401
    assert (await resp.json())["code"] == "token_expired"
    assert (settings.jwt_secret, token) not in tokens._verified


def test_the_token_cache_is_keyed_by_secret_and_bounded(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = jwt.encode(_claims(role="CLIENT"), settings.jwt_secret)
    assert tokens.verify_access_token(settings.jwt_secret, token).role == "CLIENT"
    with pytest.raises(Unauthorized) as caught:  # a cached token, another key: decoded again
        tokens.verify_access_token("another-secret-" + "q" * 40, token)
    assert caught.value.code == "invalid_token"
    monkeypatch.setattr(tokens, "_VERIFIED_MAX", 8)
    fresh = [jwt.encode(_claims(jti=str(i)), settings.jwt_secret) for i in range(20)]
    for each in fresh:
        tokens.verify_access_token(settings.jwt_secret, each)
    assert len(tokens._verified) <= 8
    assert (settings.jwt_secret, fresh[-1]) in tokens._verified  # oldest out first
    assert (settings.jwt_secret, fresh[0]) not in tokens._verified
