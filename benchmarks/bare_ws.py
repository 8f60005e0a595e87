"""The bare aiohttp receive loop: a socket handler that only parses JSON.

Used by bench_gateway.py as the ceiling to compare the gateway against.
`python -m benchmarks.bare_ws PORT`; GET /count returns the number of parsed frames.
"""

from __future__ import annotations

import sys

import orjson
import uvloop
from aiohttp import WSMsgType, web

_count = [0]


async def ws_handler(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=16 * 1024, compress=False)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type is WSMsgType.TEXT:
            orjson.loads(msg.data)
            _count[0] += 1
    return ws


async def count(_request: web.Request) -> web.Response:
    return web.json_response({"count": _count[0]})


def main() -> None:
    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    app.router.add_get("/count", count)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), backlog=4096, print=None)


if __name__ == "__main__":
    main()
