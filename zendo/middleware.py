"""HTTP cross-cutting concerns: errors as problem+json, CORS, security headers, metrics, access log."""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from redis import exceptions as redis_errors

from core import appkeys
from core.db import UNAVAILABLE
from core.errors import (
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
    ZendoError,
)
from zendo.system.logwriter import line_sink

log = logging.getLogger("zendo.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CSP = "default-src 'none'; frame-ancestors 'none'"
_CORS_ALLOW_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-Zendo-Client"
_CORS_ALLOW_METHODS = "GET, POST, PATCH, PUT, DELETE, OPTIONS"


def problem_document(status: int, code: str, title: str, detail: str) -> dict[str, Any]:
    """The problem+json document (RFC 9457) of every error answer."""
    return {
        "type": f"https://zendo.example/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = problem_document(status, code, title, detail)
    if errors is not None:
        body["errors"] = errors
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        content_type="application/problem+json",
        headers=headers,
    )


def problem_from_error(exc: ZendoError) -> web.Response:
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="zendo"'
    if exc.retry_after_s is not None:
        headers["Retry-After"] = str(exc.retry_after_s)
    errors = None
    if isinstance(exc, ValidationFailed):
        errors = [{"field": e.field, "message": e.message} for e in exc.errors]
    return problem(exc.status, exc.code, exc.title, exc.detail, errors=errors, headers=headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ZendoError as exc:
        return problem_from_error(exc)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.status == 101:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        detail = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason
        return problem(exc.status, code, exc.reason, detail or exc.reason, headers=headers)
    except asyncpg.ForeignKeyViolationError as exc:
        # A row the request refers to went away after it was checked, or was never
        # checked: a token outliving its deleted account, an artisan removed while the
        # index still ranked it. The request is consistent; the data moved under it.
        log.warning("%s %s refers to a missing row: %s", request.method, request.path, exc)
        return problem(
            409, "conflict", "Conflict", "The request refers to a record that no longer exists"
        )
    except asyncpg.CharacterNotInRepertoireError as exc:
        # Validation refuses U+0000 before any query; this catches any path it missed.
        log.warning("%s %s: text PostgreSQL cannot store: %s", request.method, request.path, exc)
        return problem_from_error(
            ValidationFailed(detail="A text field holds a character that cannot be stored")
        )
    except UNAVAILABLE as exc:
        # PostgreSQL restarting or unreachable, a connection refused or reset.
        log.warning("%s %s: postgresql unavailable: %r", request.method, request.path, exc)
        return problem_from_error(
            ServiceUnavailable("A backing service is unavailable; retry shortly", retry_after_s=1)
        )
    except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
        # Redis down, or its pool exhausted for longer than the pool's timeout (a storm
        # of work queued ahead): nothing was half-done, the request can be retried.
        log.warning("%s %s: redis unavailable: %s", request.method, request.path, exc)
        return problem_from_error(
            ServiceUnavailable("A backing service is unavailable; retry shortly", retry_after_s=1)
        )
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem(
            500, "internal_error", "Internal Server Error", "An unexpected error occurred"
        )


def cors_middleware(allowed: tuple[str, ...]) -> Callable[..., Awaitable[web.StreamResponse]]:
    allowed_set = frozenset(allowed)

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        is_allowed = origin is not None and origin.rstrip("/") in allowed_set
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            if not is_allowed:
                return problem(403, "origin_not_allowed", "Forbidden", "Origin is not allowed")
            response: web.StreamResponse = web.Response(status=204)
            response.headers["Access-Control-Allow-Methods"] = _CORS_ALLOW_METHODS
            response.headers["Access-Control-Allow-Headers"] = _CORS_ALLOW_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"
        else:
            response = await handler(request)
        if is_allowed and origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
            response.headers["Access-Control-Expose-Headers"] = "Retry-After, WWW-Authenticate"
            response.headers.add("Vary", "Origin")
        return response

    return cors


# Request ids only correlate log lines: a random prefix per process and a counter are
# unique enough, and cost no system call (os.urandom per request also lets another
# thread take the GIL in the middle of a handler).
_REQUEST_ID_PREFIX = secrets.token_hex(4)
_request_numbers = itertools.count()


def new_request_id() -> str:
    return f"{_REQUEST_ID_PREFIX}{next(_request_numbers) & 0xFFFFFFFF:08x}"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[appkeys.REQUEST_ID] = request.headers.get("X-Request-Id", "")[:64] or new_request_id()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        info = request.match_info.route.resource
        route = info.canonical if info is not None else "unmatched"
        request.app[appkeys.METRICS].count_request(route, status)


def route_template(request: web.BaseRequest) -> str:
    """The matched route's template (`/interventions/{id}`), or "unmatched"."""
    match_info = getattr(request, "match_info", None)
    resource = match_info.route.resource if match_info is not None else None
    return resource.canonical if resource is not None else "unmatched"


# The headers every answer carries. Answers carry tokens or personal data (users, jobs,
# positions, documents): none may be kept by a browser or a proxy (the few public ones
# lose nothing by it).
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", _CSP),
    ("Cache-Control", "no-store"),
)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    for name, value in SECURITY_HEADERS:
        headers.setdefault(name, value)
    if request.secure:
        headers.setdefault("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
    headers.setdefault("X-Request-Id", request.get(appkeys.REQUEST_ID, ""))


class JsonAccessLogger(AbstractAccessLogger):
    """One JSON line per request. Logs the route template only (`/files/{token}`, not
    the signed token in the path): no concrete path, query string, headers or body, so
    tokens and passwords never reach the log. Straight to the batched writer when it is
    the only handler on the way (`line_sink`)."""

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(logger, log_format)
        self._put_line = line_sink(logger)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time_: float) -> None:
        line = orjson.dumps(
            {
                "ts": round(time.time(), 3),
                "request_id": request.get(appkeys.REQUEST_ID, ""),
                "method": request.method,
                "path": route_template(request),
                "status": response.status,
                "duration_ms": round(time_ * 1000, 2),
                "remote": request.remote,
            }
        ).decode()
        if self._put_line is not None:
            self._put_line(line)
        else:
            self.logger.info(line)
