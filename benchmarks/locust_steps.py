"""The phases of the README's locust test: the statistics reset once the warm-up is over
(ZENDO_BENCH_WARMUP_S after the last user started), stepped job rates, and the stop.

Stepped job rates (benchmarks/bench_capacity.py runs them): with
ZENDO_BENCH_RATE_STEPS="30,40,50" the client users create jobs at each rate in turn
(jobs/s), after the warm-up (ZENDO_BENCH_WARMUP_S), for ZENDO_BENCH_STEP_S seconds each;
then locust stops. The pacing of each client stays ZENDO_BENCH_CLIENT_PACING: a step
changes how many of the clients are active (rate x pacing of them), so a new rate takes
hold within one pacing. Each step's statistics cover its last STEP_S - SETTLE_S seconds
(the first SETTLE_S let the previous step's jobs finish and the new clients find their
phase), and are appended as one JSON line to ZENDO_BENCH_STEPS_OUT.

Without ZENDO_BENCH_RATE_STEPS every client is active all along (the README's run).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from typing import Any

import gevent
from locust import events
from locust.env import Environment

from benchmarks.rate_steps import SETTLE_S, parse_rates

WARMUP_S = float(os.environ.get("ZENDO_BENCH_WARMUP_S", "0"))


@dataclass(frozen=True, slots=True)
class StepPlan:
    rates: tuple[float, ...]  # jobs/s, in order
    step_s: float
    pacing_s: float  # each active client creates a job every pacing_s
    out: str | None  # the JSON-lines file of the steps' results

    @classmethod
    def from_env(cls, env: dict[str, str], pacing_s: float) -> StepPlan:
        rates = parse_rates(env.get("ZENDO_BENCH_RATE_STEPS", ""))
        step_s = float(env.get("ZENDO_BENCH_STEP_S", "35"))
        if rates and step_s <= SETTLE_S:
            raise ValueError(f"ZENDO_BENCH_STEP_S must exceed the {SETTLE_S} s of settling")
        return cls(rates, step_s, pacing_s, env.get("ZENDO_BENCH_STEPS_OUT"))

    def clients_for(self, rate: float) -> int:
        return round(rate * self.pacing_s)


PLAN = StepPlan.from_env(dict(os.environ), float(os.environ.get("ZENDO_BENCH_CLIENT_PACING", "6")))


class ActiveClients:
    """How many of the client users (by their start order) create jobs now."""

    limit: float = math.inf if not PLAN.rates else PLAN.clients_for(PLAN.rates[0])

    @classmethod
    def includes(cls, number: int) -> bool:
        return number < cls.limit


def step_rows(environment: Environment) -> dict[str, dict[str, Any]]:
    """locust's table now: per row, its type, count, failures and percentiles (ms)."""
    rows: dict[str, dict[str, Any]] = {}
    for entry in environment.stats.entries.values():
        if entry.num_requests == 0 and entry.num_failures == 0:
            continue
        rows[entry.name] = {
            "type": entry.method,
            "n": entry.num_requests,
            "failures": entry.num_failures,
            "p50_ms": entry.get_response_time_percentile(0.5),
            "p99_ms": entry.get_response_time_percentile(0.99),
            "max_ms": entry.max_response_time,
        }
    return rows


def run_steps(environment: Environment, warmup_s: float) -> None:
    """The greenlet started once every user is running: each step in turn, then stop."""
    gevent.sleep(warmup_s)
    for rate in PLAN.rates:
        ActiveClients.limit = PLAN.clients_for(rate)
        gevent.sleep(SETTLE_S)
        environment.stats.reset_all()
        started = time.time()
        gevent.sleep(PLAN.step_s - SETTLE_S)
        ended = time.time()
        line = {
            "rate": rate,
            "clients": PLAN.clients_for(rate),
            "started": started,
            "ended": ended,
            "rows": step_rows(environment),
            "errors": {
                f"{e.method} {e.name}: {e.error}"[:200]: e.occurrences
                for e in environment.stats.errors.values()
            },
        }
        if PLAN.out:
            with open(PLAN.out, "a") as fh:
                fh.write(json.dumps(line) + "\n")
    if environment.runner is not None:
        environment.runner.quit()


class Run:
    """Set once the run is over (locust's `test_stopping`, before it stops the users)."""

    stopping = False


@events.test_stopping.add_listener
def _stop_jobs_under_way(environment: Environment, **_kwargs: Any) -> None:
    """Locust then stops 10,000 users at once, and their sockets close together: not
    the steady state this test measures (a mass close holds the server for up to a
    second; `benchmarks.bench_storm` measures it). The jobs under way run in greenlets of
    their own, which locust does not stop: from now on they send no status change and
    no offer answer, and no latency is recorded."""
    Run.stopping = True


@events.init.add_listener
def _reset_after_warm_up(environment: Environment, **_kwargs: Any) -> None:
    def on_spawning_complete(**_kw: Any) -> None:
        if WARMUP_S > 0:
            gevent.spawn_later(WARMUP_S, environment.stats.reset_all)
        if PLAN.rates:
            gevent.spawn(run_steps, environment, WARMUP_S)

    environment.events.spawning_complete.add_listener(on_spawning_complete)
