"""The web-client refresh cookie and its CSRF guard.

Web clients send `X-Zendo-Client: web`. Their refresh token travels only in the
`zendo_rt` cookie (HttpOnly, Secure, SameSite=Strict, Path=/auth), never in a body.
A browser attaches cookies to cross-site requests on its own but cannot add a
custom header to them without a CORS preflight, which only allowlisted origins
pass; so the cookie counts only when that header is present.
"""

from __future__ import annotations

from aiohttp import web

from core.errors import Unauthorized

COOKIE_NAME = "zendo_rt"
COOKIE_PATH = "/auth"
CLIENT_HEADER = "X-Zendo-Client"
WEB_CLIENT = "web"


def is_web_client(request: web.Request) -> bool:
    return request.headers.get(CLIENT_HEADER, "").strip().lower() == WEB_CLIENT


def set_refresh_cookie(response: web.StreamResponse, token: str, max_age_s: int) -> None:
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=max_age_s,
        path=COOKIE_PATH,
        secure=True,
        httponly=True,
        samesite="Strict",
    )


def clear_refresh_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(
        COOKIE_NAME, path=COOKIE_PATH, secure=True, httponly=True, samesite="Strict"
    )


def refresh_token_from(request: web.Request, body_token: str | None) -> str | None:
    """The refresh token of a refresh/logout call: the body's, else the cookie.

    The cookie without `X-Zendo-Client: web` is refused (401 `csrf_header_required`),
    so a cross-site form cannot ride on it. None when neither is present.
    """
    if body_token is not None:
        return body_token
    cookie = request.cookies.get(COOKIE_NAME)
    if not cookie:
        return None
    if not is_web_client(request):
        raise Unauthorized(
            f"The {COOKIE_NAME} cookie is only accepted with the header {CLIENT_HEADER}: web",
            code="csrf_header_required",
        )
    return cookie
