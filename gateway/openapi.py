"""OpenAPI fragment of the gateway (the `/ws` upgrade)."""

from __future__ import annotations

from typing import Any

PATHS: dict[str, Any] = {}
SCHEMAS: dict[str, Any] = {}
