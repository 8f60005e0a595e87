"""WebSocket gateway: artisan sockets, live positions and pushes across processes."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Mount `/ws` and the gateway's background tasks on the app."""
