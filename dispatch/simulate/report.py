"""The simulator's report: report.json (CONTRACT §9's keys), report.md, PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt
import numpy as np

from dispatch.interventions.statemachine import UNFULFILLED
from dispatch.simulate.world import PolicyRun

_HOUR = 3600.0


def _quantiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None}
    q = np.percentile(np.array(values), [50, 90, 99])
    return {
        "p50": round(float(q[0]), 3),
        "p90": round(float(q[1]), 3),
        "p99": round(float(q[2]), 3),
    }


def gini(values: list[float]) -> float:
    """0: everyone earns the same; 1: one earns everything."""
    x = np.sort(np.array(values, dtype=float))
    if x.size == 0 or x.sum() == 0:
        return 0.0
    n = x.size
    return float((2 * np.arange(1, n + 1) - n - 1).dot(x) / (n * x.sum()))


def summary(run: PolicyRun) -> dict[str, Any]:
    jobs = run.jobs
    offers = run.offers
    worked = [a for a in run.artisans if a.online_s > 0]
    online = sum(a.online_s for a in worked)
    return {
        "jobs": len(jobs),
        "assigned": sum(1 for j in jobs if j.ever_assigned),
        "unfulfilled": sum(1 for j in jobs if j.status == UNFULFILLED),
        "time_to_first_offer_s": _quantiles(
            [j.first_offer_at - j.created_at for j in jobs if j.first_offer_at is not None]
        ),
        "time_to_assign_s": _quantiles(
            [j.assigned_at - j.created_at for j in jobs if j.assigned_at is not None]
        ),
        "pickup_km": _quantiles([j.pickup_km for j in jobs if j.pickup_km is not None]),
        "offers_per_job": round(len(offers) / len(jobs), 3) if jobs else 0.0,
        # Accepts over offers sent (a held accept beaten by a better one counts too).
        "acceptance_rate": round(sum(o.accepted for o in offers) / len(offers), 4)
        if offers
        else 0.0,
        "withdrawals": run.withdrawals,
        "utilization": round(sum(a.busy_s for a in worked) / online, 4) if online else 0.0,
        "earnings_gini": round(gini([a.earnings for a in worked]), 4),
    }


def hourly(run: PolicyRun) -> tuple[list[float | None], list[int]]:
    hours = int(np.ceil(run.hours))
    waits: list[list[float]] = [[] for _ in range(hours)]
    unfulfilled = [0] * hours
    for j in run.jobs:
        h = min(hours - 1, int(j.created_at // _HOUR))
        if j.assigned_at is not None:
            waits[h].append(j.assigned_at - j.created_at)
        if j.status == UNFULFILLED:
            unfulfilled[h] += 1
    return [float(np.median(w)) if w else None for w in waits], unfulfilled


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    return f"{v:g}" if isinstance(v, float) else str(v)


def markdown(scenario: str, seed: int, table: dict[str, dict[str, Any]]) -> str:
    names = list(table)
    lines = [
        f"# Simulation: {scenario}, seed {seed}",
        "",
        "| metric | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    first = table[names[0]] if names else {}
    for key, value in first.items():
        if isinstance(value, dict):
            for q in value:
                row = [_fmt(table[n][key][q]) for n in names]
                lines.append(f"| {key} {q} | " + " | ".join(row) + " |")
        else:
            lines.append(f"| {key} | " + " | ".join(_fmt(table[n][key]) for n in names) + " |")
    lines += [
        "",
        "Plots: `time_to_assign_by_hour.png`, `unfulfilled_by_hour.png`, `earnings_lorenz.png`.",
        "",
    ]
    return "\n".join(lines)


def _plots(out: Path, runs: list[PolicyRun]) -> None:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for run in runs:
        med, _ = hourly(run)
        ax.plot(
            range(len(med)),
            [m if m is not None else np.nan for m in med],
            marker=".",
            label=run.policy,
        )
    ax.set(
        xlabel="hour of the day", ylabel="median time to assign (s)", title="Time to assign by hour"
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "time_to_assign_by_hour.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for run in runs:
        _, unf = hourly(run)
        ax.plot(range(len(unf)), unf, marker=".", label=run.policy)
    ax.set(xlabel="hour of the day", ylabel="jobs UNFULFILLED", title="Unfulfilled by hour")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "unfulfilled_by_hour.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="equality")
    for run in runs:
        x = np.sort(np.array([a.earnings for a in run.artisans if a.online_s > 0]))
        if x.size and x.sum() > 0:
            cum = np.concatenate([[0.0], np.cumsum(x) / x.sum()])
            ax.plot(
                np.linspace(0, 1, cum.size), cum, label=f"{run.policy} (gini {gini(list(x)):.2f})"
            )
    ax.set(
        xlabel="share of artisans (poorest first)",
        ylabel="share of earnings",
        title="Earnings (Lorenz curve)",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "earnings_lorenz.png", dpi=100)
    plt.close(fig)


def write_report(out: Path, scenario: str, seed: int, runs: list[PolicyRun]) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    table = {run.policy: summary(run) for run in runs}
    report = {"scenario": scenario, "seed": seed, "policies": table}
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    (out / "report.md").write_text(markdown(scenario, seed, table))
    _plots(out, runs)
    return report
