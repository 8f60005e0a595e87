"""The cost model's driver: an answer that is not JSON is counted, not fatal.

The bare handlers answer aiohttp's plain-text 500 when a route's job does not exist on
their side (the real server shed its creation): the run goes on and says so.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from benchmarks.cost.driver import Driver
from benchmarks.cost.phases import merged


async def _plain_500(_request: web.Request) -> web.Response:
    return web.Response(
        status=500, text="500 Internal Server Error\n\nServer got itself in trouble"
    )


async def _json_ok(_request: web.Request) -> web.Response:
    return web.json_response({"id": "x"})


async def test_an_answer_that_is_not_json_is_counted_under_its_status() -> None:
    app = web.Application()
    app.router.add_get("/broken", _plain_500)
    app.router.add_get("/fine", _json_ok)
    async with TestServer(app) as server:
        driver = Driver(base=str(server.make_url("")).rstrip("/"))
        async with aiohttp.ClientSession() as session:
            driver.session = session
            assert await driver._call("GET", "/fine", None) == (200, {"id": "x"})
            assert await driver._call("GET", "/broken", None) == (500, None)
            assert await driver._call("GET", "/broken", None) == (500, None)
            driver.session = None
    assert dict(driver.not_json) == {500: 2}
    assert driver.not_json_sample.startswith("500 Internal Server Error")


def test_a_window_adds_up_the_not_json_reports_of_its_pieces() -> None:
    sample = "500 Internal Server Error"
    pieces = [
        {"ok": 10, "statuses": {200: 10}, "elapsed": 1.0},
        {
            "ok": 7,
            "statuses": {200: 7, 500: 3},
            "elapsed": 1.5,
            "not_json": {"statuses": {500: 3}, "sample": sample},
        },
        {
            "ok": 8,
            "statuses": {200: 8, 500: 2},
            "elapsed": 1.5,
            "not_json": {"statuses": {500: 2}, "sample": sample},
        },
    ]
    window = merged(pieces)
    assert window["ok"] == 25
    assert window["statuses"] == {200: 25, 500: 5}
    assert window["not_json"] == {"statuses": {500: 5}, "sample": sample}
    assert "not_json" not in merged(pieces[:1])
