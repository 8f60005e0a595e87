"""Event-loop health metrics and the stall tracer."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from core.gateway_config import GatewayConfig
from core.settings import Settings
from gateway import appkeys as gateway_keys

MakeApp = Callable[..., Any]


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


@pytest.fixture
async def make_app(
    settings: Settings, clean_state: None, aiohttp_client: Callable[..., Any]
) -> MakeApp:
    async def make(
        config: GatewayConfig | None = None, **changes: Any
    ) -> tuple[web.Application, TestClient[Any, Any]]:
        from zendo.app import create_app

        app = create_app(settings.replace(run_background=False, **changes))
        if config is not None:
            app[gateway_keys.GATEWAY_CONFIG] = config
        return app, await aiohttp_client(app)

    return make


def _hold_the_loop_in_a_named_function(seconds: float) -> None:
    time.sleep(seconds)  # on purpose: this test is about a callback that blocks the loop


async def test_loop_lag_histogram_sees_a_blocked_loop(make_app: MakeApp) -> None:
    _app, client = await make_app()
    await asyncio.sleep(0.1)  # the probe's first rounds
    _hold_the_loop_in_a_named_function(0.2)
    await asyncio.sleep(0.1)
    text = await (await client.get("/metrics")).text()
    buckets = _samples(text, "zendo_event_loop_lag_seconds_bucket")
    total = _samples(text, "zendo_event_loop_lag_seconds_count")[()]
    under_100ms = buckets[(("le", "0.1"),)]
    assert total >= 3
    assert total - under_100ms >= 1  # the 200 ms hold was seen as lag


async def test_gc_pauses_are_timed_by_generation(make_app: MakeApp) -> None:
    # Pacer off, so only this test's collections count.
    _app, client = await make_app(GatewayConfig(gc_young_interval_s=0))
    before = _samples(await (await client.get("/metrics")).text(), "zendo_gc_pause_seconds_count")
    gc.collect(0)
    gc.collect(1)
    after = _samples(await (await client.get("/metrics")).text(), "zendo_gc_pause_seconds_count")
    for generation in ("0", "1"):
        key = (("generation", generation),)
        assert after[key] >= before[key] + 1


async def test_runtime_hooks_are_removed_at_cleanup(settings: Settings, clean_state: None) -> None:
    from zendo.app import create_app

    callbacks_before = list(gc.callbacks)
    app = create_app(settings.replace(run_background=False, stall_trace_ms=40.0))
    runner = web.AppRunner(app)
    await runner.setup()
    assert len(gc.callbacks) == len(callbacks_before) + 1
    await runner.cleanup()
    assert gc.callbacks == callbacks_before
    assert not any(t.get_name() == "loop-lag-probe" for t in asyncio.all_tasks())


async def test_stall_tracer_logs_the_code_that_holds_the_loop(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    await make_app(stall_trace_ms=40.0)
    caplog.set_level(logging.WARNING, logger="zendo.runtime")
    _hold_the_loop_in_a_named_function(0.3)

    def stalls() -> list[str]:
        return [r.getMessage() for r in caplog.records if "event loop stalled" in r.getMessage()]

    # The watchdog thread sees the stall during it, but formats the loop's stack with the
    # GIL it shares with the loop: under load its report can land after the stall is over.
    async with asyncio.timeout(3):
        while not stalls():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    assert len(stalls()) == 1  # one report per stall, not one per watchdog wake-up
    assert "_hold_the_loop_in_a_named_function" in stalls()[0]


async def test_stall_tracer_is_off_by_default(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    await make_app()
    caplog.set_level(logging.WARNING, logger="zendo.runtime")
    _hold_the_loop_in_a_named_function(0.15)
    await asyncio.sleep(0.05)
    assert not [r for r in caplog.records if "stalled" in r.getMessage()]
