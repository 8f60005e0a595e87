"""`zendo simulate`: every policy asked for, over one scenario and seed, then the report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from core.settings import Settings
from dispatch.policies import make_policy
from dispatch.simulate.report import write_report
from dispatch.simulate.scenario import load_scenario
from dispatch.simulate.sim import simulate


def run(
    settings: Settings,
    *,
    scenario: str,
    policies: Sequence[str],
    seed: int,
    out: Path,
    progress: bool = True,
) -> dict[str, Any]:
    """Simulate each policy (the operator's offer timeout, batch and radius from
    `settings`) and write DIR/report.json, report.md and the plots. Raises
    ScenarioError for a bad scenario, ValueError for an unknown policy."""
    world = load_scenario(scenario)
    chosen = [
        make_policy(
            name,
            offer_timeout_s=settings.offer_timeout_s,
            radius_km=settings.match_radius_km,
            offer_batch=settings.offer_batch,
        )
        for name in policies
    ]
    runs = []
    # disable=None: a bar on a terminal, nothing when the output is not one.
    with tqdm(total=world.hours * len(chosen), unit="h", disable=None if progress else True) as bar:
        for policy in chosen:
            bar.set_description(policy.name)
            runs.append(simulate(world, policy, seed, lambda s: bar.update(s / 3600.0)))
    return write_report(out, world.name, seed, runs)
