"""Role guards: reusable decorators for handlers, and the bearer-token reader.

`/admin/*` and `/artisan/*` are also guarded by prefix in `role_prefix_middleware`,
so a route that forgets its decorator is still protected.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from aiohttp import web

from core import appkeys
from core.errors import Forbidden, Unauthorized
from core.principal import Principal
from core.tokens import verify_access_token

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PREFIX_ROLES = (("/admin/", "ADMIN"), ("/artisan/", "ARTISAN"))


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticate(request: web.Request) -> Principal:
    """The caller's principal as the guards verified it (`verify_request`), for handlers."""
    cached: Principal | None = request.get(appkeys.PRINCIPAL)
    if cached is not None:
        return cached
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("A Bearer access token is required")
    # Unreachable behind the guards, which verify first; without them the session's
    # revocation would go unchecked, so this is refused rather than trusted.
    raise Unauthorized("This endpoint must be guarded")


async def verify_request(request: web.Request) -> Principal:
    """The caller's principal: the token verified and its session not logged out; once
    per request, cached on it."""
    cached: Principal | None = request.get(appkeys.PRINCIPAL)
    if cached is not None:
        return cached
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("A Bearer access token is required")
    principal = verify_access_token(request.app[appkeys.SETTINGS].jwt_secret, token)
    if principal.session_id is not None:
        await request.app[appkeys.SESSIONS].check(principal)
    request[appkeys.PRINCIPAL] = principal
    return principal


def requires_role(*roles: str) -> Callable[[Handler], Handler]:
    """Decorator: 401 without a valid token, 403 if the role is not one of `roles`.

    With no roles, any authenticated user passes.
    """

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            principal = await verify_request(request)
            if roles and principal.role not in roles:
                raise Forbidden(f"This endpoint is for {' or '.join(roles)} users")
            return await handler(request)

        return guarded

    return decorate


requires_auth = requires_role()


@web.middleware
async def role_prefix_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    for prefix, role in _PREFIX_ROLES:
        if request.path.startswith(prefix) and request.method != "OPTIONS":
            if (await verify_request(request)).role != role:
                raise Forbidden(f"{prefix}* is for {role} users")
    return await handler(request)
