"""HTTP probes of the processes under test: readiness, worker count and counters."""

from __future__ import annotations

import asyncio
import os
import re
import time
from typing import Any

import aiohttp

from benchmarks.cost.constants import SECRET


def expected_workers(wanted: int | None) -> int:
    """What `zendo serve` will run: --server-workers, else its own default (if it has one)."""
    if wanted is not None:
        return wanted
    from core.settings import Settings

    settings = Settings.from_env({**os.environ, "ZENDO_JWT_SECRET": SECRET})
    return int(getattr(settings, "workers", 1))


async def wait_workers(root: int, port: int, wanted: int | None) -> int:
    """Until every worker serves (`zendo_workers`, summed over the pool by `/metrics`;
    a single process is its own worker)."""
    expected = expected_workers(wanted)
    deadline = time.monotonic() + 60
    while True:
        try:
            serving = await scrape(f"http://127.0.0.1:{port}/metrics", r"^zendo_workers ([0-9.]+)$")
        except aiohttp.ClientError:
            serving = 0.0
        if serving >= expected:
            return expected
        if time.monotonic() > deadline:
            raise RuntimeError(f"/metrics: {serving:.0f} of {expected} workers serving")
        await asyncio.sleep(0.2)


async def wait_http(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer")
            await asyncio.sleep(0.1)


async def scrape(url: str, pattern: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        text = await resp.text()
    match = re.search(pattern, text, re.M)
    return float(match.group(1)) if match else 0.0


async def fix_counters(port: int) -> tuple[float, float]:
    """(accepted, rejected) fixes, summed over the server's workers (`/metrics` answers
    for the whole pool, whichever worker takes the scrape)."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
            text = await resp.text()
    accepted = re.search(r"^zendo_pings_accepted_total ([0-9.e+]+)$", text, re.M)
    rejected = re.findall(
        r'^zendo_pings_rejected_total\{reason="[a-z_]+"\} ([0-9.e+]+)$', text, re.M
    )
    return (float(accepted.group(1)) if accepted else 0.0), sum(map(float, rejected))


def bare_count(port: int) -> Any:
    return scrape(f"http://127.0.0.1:{port}/count", r'"count":\s*(\d+)')
