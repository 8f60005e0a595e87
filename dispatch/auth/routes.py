"""HTTP routes of the auth context (CONTRACT §2). Thin: parse, call the service, answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from core import appkeys
from core.errors import FieldError, ValidationFailed
from core.guards import authenticate, requires_auth
from core.jsonutil import decode_as, json_response, read_body, read_json
from dispatch.auth import cookies, passwords, service
from dispatch.auth.schemas import LoginRequest, RefreshRequest, RegisterRequest

routes = web.RouteTableDef()


def _grant_response(
    request: web.Request, grant: service.TokenGrant, *, status: int
) -> web.Response:
    settings = request.app[appkeys.SETTINGS]
    web_client = cookies.is_web_client(request)
    response = json_response(
        grant.body(settings, include_refresh_token=not web_client), status=status
    )
    if web_client:
        cookies.set_refresh_cookie(response, grant.refresh_token, grant.refresh_expires_in)
    # Token responses must not be stored by browsers or proxies.
    response.headers["Cache-Control"] = "no-store"
    return response


async def _presented_refresh_token(request: web.Request) -> str:
    """The token from the optional JSON body, else from the cookie (web clients only)."""
    raw = await read_body(request)
    body = decode_as(raw, RefreshRequest) if raw.strip() else RefreshRequest()
    token = cookies.refresh_token_from(request, body.refresh_token)
    if token is None:
        raise ValidationFailed([FieldError("refresh_token", "required (or the cookie for web)")])
    return token


@routes.post("/auth/register")
async def register(request: web.Request) -> web.Response:
    body = await read_json(request, RegisterRequest)
    grant = await service.register(request.app, body)
    return _grant_response(request, grant, status=201)


@routes.post("/auth/login")
async def login(request: web.Request) -> web.Response:
    body = await read_json(request, LoginRequest)
    grant = await service.login(
        request.app,
        body,
        # The peer address; X-Forwarded-For is not trusted (no proxy is assumed).
        client_ip=request.remote or "unknown",
    )
    return _grant_response(request, grant, status=200)


@routes.post("/auth/refresh")
async def refresh(request: web.Request) -> web.Response:
    token = await _presented_refresh_token(request)
    grant = await service.refresh(request.app, token)
    return _grant_response(request, grant, status=200)


@routes.post("/auth/logout")
async def logout(request: web.Request) -> web.Response:
    token = await _presented_refresh_token(request)
    await service.logout(request.app, token)
    response = web.Response(status=204)
    if cookies.is_web_client(request) or cookies.COOKIE_NAME in request.cookies:
        cookies.clear_refresh_cookie(response)
    return response


@routes.get("/auth/me")
@requires_auth
async def me(request: web.Request) -> web.Response:
    principal = authenticate(request)
    user = await service.me(request.app, principal.user_id)
    return json_response(user)


async def _warm_dummy_hash(app: web.Application) -> AsyncIterator[None]:
    # The first unknown-email login would otherwise also pay for building the
    # dummy hash, and answer measurably slower than a wrong password.
    await asyncio.to_thread(passwords.dummy_hash, app[appkeys.SETTINGS].bcrypt_rounds)
    yield


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
    app.cleanup_ctx.append(_warm_dummy_hash)
