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
    """The caller's principal, verified once per request and cached on it."""
    cached: Principal | None = request.get(appkeys.PRINCIPAL)
    if cached is not None:
        return cached
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("A Bearer access token is required")
    principal = verify_access_token(request.app[appkeys.SETTINGS].jwt_secret, token)
    request[appkeys.PRINCIPAL] = principal
    return principal


def requires_role(*roles: str) -> Callable[[Handler], Handler]:
    """Decorator: 401 without a valid token, 403 if the role is not one of `roles`.

    With no roles, any authenticated user passes.
    """

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            principal = authenticate(request)
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
            if authenticate(request).role != role:
                raise Forbidden(f"{prefix}* is for {role} users")
    return await handler(request)
