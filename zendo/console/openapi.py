"""OpenAPI fragment of the ops console's files."""

from __future__ import annotations

from typing import Any

_CSP_NOTE = (
    " Served with a Content-Security-Policy allowing scripts, styles, images and"
    " connections from the page's own origin only."
)


def _file(
    summary: str, media_type: str, operation_id: str, schema_type: str = "string"
) -> dict[str, Any]:
    return {
        "get": {
            "tags": ["console"],
            "summary": summary,
            "description": summary + "." + _CSP_NOTE,
            "operationId": operation_id,
            "security": [{}],
            "responses": {
                "200": {
                    "description": "The file",
                    "content": {media_type: {"schema": {"type": schema_type}}},
                }
            },
        }
    }


PATHS: dict[str, Any] = {
    "/console": _file(
        "The ops console: a live map of supply and demand, the open jobs, their dispatch "
        "timeline, KPIs and artisan review (ADMIN login inside the page; README)",
        "text/html",
        "getConsole",
    ),
    "/console/console.js": _file("The console's script", "text/javascript", "getConsoleScript"),
    "/console/console-map.js": _file(
        "The console's map script", "text/javascript", "getConsoleMapScript"
    ),
    "/console/console-panels.js": _file(
        "The console's panels script", "text/javascript", "getConsolePanelsScript"
    ),
    "/console/console.css": _file("The console's style sheet", "text/css", "getConsoleStyle"),
    "/console/service-areas.geojson": _file(
        "The served polygons (ZENDO_SERVICE_AREAS), the map's base layer",
        "application/geo+json",
        "getConsoleServiceAreas",
        "object",
    ),
}
SCHEMAS: dict[str, Any] = {}
