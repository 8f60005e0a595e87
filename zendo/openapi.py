"""The OpenAPI 3.1 document, assembled from one fragment per context.

Each context keeps its paths and schemas beside its routes (`<context>/openapi.py`);
`tests/test_openapi.py` fails when the router and this document disagree.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from core import openapi as common
from dispatch.admin import openapi as admin
from dispatch.artisans import openapi as artisans
from dispatch.auth import openapi as auth
from dispatch.interventions import openapi as interventions
from dispatch.offers import openapi as offers
from dispatch.ops import openapi as ops_api
from dispatch.payments import openapi as payments
from dispatch.storage import openapi as storage
from gateway import openapi as gateway
from zendo.console import openapi as console
from zendo.system import openapi as system

FRAGMENTS = (
    system,
    auth,
    artisans,
    admin,
    interventions,
    offers,
    payments,
    storage,
    gateway,
    ops_api,
    console,
)


@functools.cache
def _build() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = dict(common.SCHEMAS)
    for fragment in FRAGMENTS:
        for path, ops in fragment.PATHS.items():
            existing = paths.setdefault(path, {})
            overlap = set(existing) & set(ops)
            if overlap:
                raise RuntimeError(f"OpenAPI: {path} {overlap} defined twice")
            existing.update(ops)
        for name, schema in fragment.SCHEMAS.items():
            if name in schemas and schemas[name] != schema:
                raise RuntimeError(f"OpenAPI: schema {name} defined twice")
            schemas[name] = schema
    for name in _request_schemas(paths):
        schemas[name] = copy.deepcopy(schemas[name])  # the fragments' own stay as written
        _forbid_nul(schemas[name])
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Zendo API",
            "version": "1.0.0",
            "description": "Dispatch of urgent home repairs. See CONTRACT.md.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "responses": common.RESPONSES,
        },
        "paths": paths,
    }


# Request strings cannot hold U+0000 (PostgreSQL text cannot store it: 422), so every
# free-text string of a request body says so; enums, formats and patterns already do.
NO_NUL = "^[^\\x00]*$"


def _request_schemas(paths: dict[str, Any]) -> set[str]:
    names = set()
    for ops in paths.values():
        for op in ops.values():
            for media in op.get("requestBody", {}).get("content", {}).values():
                target = media.get("schema", {}).get("$ref", "")
                if target.startswith("#/components/schemas/"):
                    names.add(target.rsplit("/", 1)[1])
    return names


def _forbid_nul(schema: dict[str, Any]) -> None:
    types = schema.get("type")
    is_string = types == "string" or (isinstance(types, list) and "string" in types)
    if is_string and not {"enum", "const", "pattern", "format"} & set(schema):
        schema["pattern"] = NO_NUL
    for sub in schema.get("properties", {}).values():
        _forbid_nul(sub)
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, ()):
            _forbid_nul(sub)
    if isinstance(schema.get("items"), dict):
        _forbid_nul(schema["items"])


def build_spec() -> dict[str, Any]:
    return copy.deepcopy(_build())
