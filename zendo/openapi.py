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


def build_spec() -> dict[str, Any]:
    return copy.deepcopy(_build())
