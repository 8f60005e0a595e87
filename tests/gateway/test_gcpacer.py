"""The gateway's paced garbage collection: older generations every nth collection,
clocked young collections only when CPython stayed quiet, a bounded share of the loop."""

from __future__ import annotations

import asyncio
import gc

import pytest
from aiohttp import web

from core.gateway_config import GatewayConfig
from core.settings import Settings
from gateway import appkeys as gateway_keys
from gateway.gcpacer import GcPacer


def test_pacer_runs_older_generations_every_nth_collection() -> None:
    pacer = GcPacer(GatewayConfig(gc_gen1_threshold=3, gc_gen2_threshold=2))
    assert [pacer.next_generation() for _ in range(13)] == [
        0, 0, 1, 0, 0, 2, 0, 0, 1, 0, 0, 2, 0,
    ]  # fmt: skip


async def test_gateway_paces_collections_and_restores_gc_at_cleanup(
    settings: Settings, clean_state: None
) -> None:
    from zendo.app import create_app

    thresholds_before = gc.get_threshold()
    config = GatewayConfig(
        gc_young_interval_s=0.01, gc_gen0_threshold=12_345, gc_gen1_threshold=4, gc_gen2_threshold=3
    )
    app = create_app(settings.replace(run_background=False))
    app[gateway_keys.GATEWAY_CONFIG] = config
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        assert gc.get_threshold() == (12_345, 4, 3)
        assert gc.get_freeze_count() > 0  # what the process holds at start-up is frozen
        young_before = gc.get_stats()[0]["collections"]
        gen1_before = gc.get_stats()[1]["collections"]
        await asyncio.sleep(0.3)
        assert gc.get_stats()[0]["collections"] - young_before >= 10
        assert gc.get_stats()[1]["collections"] - gen1_before >= 2
    finally:
        await runner.cleanup()
    assert gc.get_threshold() == thresholds_before
    assert gc.get_freeze_count() == 0
    young_after_cleanup = gc.get_stats()[0]["collections"]
    await asyncio.sleep(0.1)
    assert gc.get_stats()[0]["collections"] - young_after_cleanup < 5  # the pacer stopped


async def test_pacer_ticks_only_when_cpython_stayed_quiet() -> None:
    """Under a burst of allocation CPython's own trigger keeps gen 0 small; a clocked
    collection on top of it only cost (the gateway's flat-out ceiling fell 3x)."""
    loop = asyncio.get_running_loop()
    pacer = GcPacer(GatewayConfig(gc_young_interval_s=1000))  # ticked by hand here
    gc.disable()  # no automatic collection between the lines below
    try:
        pacer._tick(loop)  # the first tick only takes note of the count
        before = gc.get_stats()[0]["collections"]
        pacer._tick(loop)  # quiet since: collects
        assert gc.get_stats()[0]["collections"] == before + 1
        gc.collect(0)  # stands for CPython's own trigger
        seen = gc.get_stats()[0]["collections"]
        pacer._tick(loop)  # not quiet: skipped
        assert gc.get_stats()[0]["collections"] == seen
        pacer._tick(loop)  # quiet again: collects
        assert gc.get_stats()[0]["collections"] == seen + 1
    finally:
        gc.enable()
        pacer.stop()


def test_a_slow_collection_pushes_the_next_tick_back() -> None:
    """Sockets sending flat out keep many young objects alive whatever the interval: the
    collector's share of the loop's time is bounded instead."""
    pacer = GcPacer(
        GatewayConfig(gc_young_interval_s=0.03, gc_max_share=0.05, gc_max_interval_s=1.0)
    )
    assert pacer.next_delay(0.0005) == 0.03  # a usual collection: the interval
    assert pacer.next_delay(0.010) == pytest.approx(0.2)  # 10 ms is 5 % of 200 ms
    assert pacer.next_delay(0.080) == 1.0  # 5 % would be 1.6 s: capped
    assert GcPacer(GatewayConfig()).next_delay(0.010) == 0.1  # the default cap
    unbounded = GcPacer(GatewayConfig(gc_young_interval_s=0.03, gc_max_share=0))
    assert unbounded.next_delay(0.010) == 0.03
