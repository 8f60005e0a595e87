"""JSON on the hot paths: orjson to encode, msgspec to decode and validate."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
import orjson
from aiohttp import web

from core.errors import FieldError, MalformedJSON, PayloadTooLarge, ValidationFailed

T = TypeVar("T")
MAX_BODY_BYTES = 1024 * 1024
_NUL_ESCAPE = b"\\u0000"
_INTEGRAL_FLOAT = "Expected `int`, got `float`"
_PATH_RE = re.compile(r"at `\$\.?([^`]*)`")


def dumps(data: Any) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z)


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=dumps(data), status=status, content_type="application/json", headers=headers
    )


def decode_as(raw: bytes | str, type_: type[T]) -> T:
    """Decode and validate; a schema mismatch becomes a 422 naming the field.

    Bytes that are not UTF-8 and nesting deeper than the decoder's recursion limit are
    a 400 like any malformed JSON; U+0000 in any decoded string is a 422 (PostgreSQL
    text cannot hold it).
    """
    try:
        value = msgspec.json.decode(raw, type=type_, strict=True)
    except msgspec.ValidationError as exc:
        if _INTEGRAL_FLOAT not in str(exc):
            raise ValidationFailed([_field_error(str(exc))]) from exc
        value = _decode_with_whole_floats(raw, type_)
    except msgspec.DecodeError as exc:
        raise MalformedJSON(f"Malformed JSON: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise MalformedJSON("The body is not valid UTF-8") from exc
    except RecursionError as exc:
        raise MalformedJSON("JSON is nested too deeply") from exc
    # JSON can only carry U+0000 escaped; the walk runs only when the escape is there.
    if _NUL_ESCAPE in (raw if isinstance(raw, bytes) else raw.encode()):
        field = nul_field(msgspec.to_builtins(value))
        if field is not None:
            raise ValidationFailed([FieldError(field or "body", "must not contain U+0000")])
    return value


def _decode_with_whole_floats(raw: bytes | str, type_: type[T]) -> T:
    """JSON Schema counts 4.0 as an integer (the OpenAPI document says `integer`), and
    msgspec's strict mode does not: on that error only, whole floats become ints and
    the body is decoded again (a float field takes an int as well)."""
    try:
        whole = _whole_floats(msgspec.json.decode(raw))
        return msgspec.json.decode(msgspec.json.encode(whole), type=type_, strict=True)
    except msgspec.ValidationError as exc:
        raise ValidationFailed([_field_error(str(exc))]) from exc


def _whole_floats(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_floats(v) for v in value]
    return value


def nul_field(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string (value or key) holding U+0000, else None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and "\x00" in key:
                return path
            found = nul_field(item, sub)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = nul_field(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def _field_error(message: str) -> FieldError:
    match = _PATH_RE.search(message)
    field = match.group(1) if match else ""
    text = _PATH_RE.sub("", message).strip(" -")
    if text.startswith("Object missing required field"):
        missing = text.split("`")[1] if "`" in text else field
        return FieldError(field=missing if not field else f"{field}.{missing}", message="required")
    return FieldError(field=field or "body", message=text)


async def read_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise PayloadTooLarge("Request body is over 1 MiB")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLarge("Request body is over 1 MiB") from exc


async def read_json(request: web.Request, type_: type[T]) -> T:
    raw = await read_body(request)
    if not raw.strip():
        raise MalformedJSON("A JSON body is required")
    return decode_as(raw, type_)
