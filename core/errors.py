"""Domain exceptions. Services raise them; one middleware maps them to problem+json."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str


class ZendoError(Exception):
    status: int = 500
    code: str = "internal_error"
    title: str = "Internal Server Error"
    # Set by errors worth retrying later: the answer's Retry-After header, in seconds.
    retry_after_s: int | None = None

    def __init__(self, detail: str | None = None, *, code: str | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if code is not None:
            self.code = code


class BadRequest(ZendoError):
    status, code, title = 400, "bad_request", "Bad Request"


class MalformedJSON(BadRequest):
    code = "malformed_json"


class Unauthorized(ZendoError):
    status, code, title = 401, "unauthorized", "Unauthorized"


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"


class Forbidden(ZendoError):
    status, code, title = 403, "forbidden", "Forbidden"


class NotFound(ZendoError):
    status, code, title = 404, "not_found", "Not Found"


class Conflict(ZendoError):
    status, code, title = 409, "conflict", "Conflict"


class PayloadTooLarge(ZendoError):
    status, code, title = 413, "payload_too_large", "Payload Too Large"


class ValidationFailed(ZendoError):
    status, code, title = 422, "validation_error", "Unprocessable Entity"

    def __init__(
        self,
        errors: list[FieldError] | None = None,
        detail: str | None = None,
        *,
        code: str | None = None,
    ) -> None:
        self.errors = errors or []
        if detail is None:
            detail = "; ".join(f"{e.field}: {e.message}" for e in self.errors) or None
        super().__init__(detail, code=code)


class RateLimited(ZendoError):
    status, code, title = 429, "rate_limited", "Too Many Requests"

    def __init__(self, retry_after_s: int, detail: str | None = None) -> None:
        super().__init__(detail or f"Too many attempts; retry in {retry_after_s} s")
        self.retry_after_s = max(1, retry_after_s)


class ServiceUnavailable(ZendoError):
    status, code, title = 503, "unavailable", "Service Unavailable"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(detail, code=code)
        self.retry_after_s = retry_after_s


class Overloaded(ServiceUnavailable):
    """This process is behind: the request is refused at once rather than queued."""

    code, title = "overloaded", "Overloaded"
