"""Serves the console's files; the service areas are the configured GeoJSON file."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

from aiohttp import web

from core import appkeys

STATIC: Final = Path(__file__).parent / "static"
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# (URL path, file, media type); the service areas are read from the settings' file.
FILES: Final = (
    ("/console", "index.html", "text/html"),
    ("/console/console.js", "console.js", "text/javascript"),
    ("/console/console-map.js", "console-map.js", "text/javascript"),
    ("/console/console-panels.js", "console-panels.js", "text/javascript"),
    ("/console/console.css", "console.css", "text/css"),
)
SERVICE_AREAS_PATH: Final = "/console/service-areas.geojson"


def _page(body: bytes, content_type: str) -> web.Response:
    response = web.Response(body=body, content_type=content_type, charset="utf-8")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-cache"
    return response


def _serve(body: bytes, content_type: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        return _page(body, content_type)

    return handler


def setup(app: web.Application) -> None:
    """Mount the console; its files are read once, here."""
    for path, name, content_type in FILES:
        app.router.add_get(path, _serve((STATIC / name).read_bytes(), content_type))
    areas = app[appkeys.SETTINGS].service_areas_path.read_bytes()
    app.router.add_get(SERVICE_AREAS_PATH, _serve(areas, "application/geo+json"))
