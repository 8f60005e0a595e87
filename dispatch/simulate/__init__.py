"""`zendo simulate`: replay a synthetic day in fast-forward through the dispatch
policies (dispatch/policies/), the matcher (matching.ArtisanIndex) and the
intervention state machine, on a virtual clock: no sockets, PostgreSQL or Redis."""

from __future__ import annotations

from dispatch.simulate.report import write_report
from dispatch.simulate.scenario import Scenario, ScenarioError, load_scenario
from dispatch.simulate.sim import simulate
from dispatch.simulate.world import PolicyRun

__all__ = ["PolicyRun", "Scenario", "ScenarioError", "load_scenario", "simulate", "write_report"]
