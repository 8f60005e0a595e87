"""The measured phases. Each measure and its baseline run in alternated pieces, in
ABBA order (`schedule`), so a drift of the machine's speed during the run weighs on both
alike: the routes (zendo / bare handlers), whole jobs (zendo alone), then the fixes
(zendo / the bare loop / GEOADD)."""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import Any

from benchmarks.cost.baselines import GeoLoad, flat_out
from benchmarks.cost.clients import Helpers
from benchmarks.cost.constants import ROUTES, STATUSES
from benchmarks.cost.meter import Delta, Meter, idle, measure, per_unit, slices_per_unit
from benchmarks.cost.probes import bare_count, fix_counters
from benchmarks.cost.pyspy import Profiler
from benchmarks.cost.report import Clock
from benchmarks.cost.seed import Seeded
from benchmarks.cost.stack import Stack


def schedule(rounds: int, sides: Sequence[str]) -> list[tuple[int, str]]:
    """(round, side) in order: forward in even rounds, backward in odd ones (A B B A ...)."""
    return [(r, s) for r in range(rounds) for s in (sides if r % 2 == 0 else sides[::-1])]


def merged(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The pieces of one route's window as one result."""
    statuses: Counter[int] = Counter()
    for r in results:
        statuses.update(r["statuses"])
    out: dict[str, Any] = {
        "ok": sum(r["ok"] for r in results),
        "statuses": dict(statuses),
        "elapsed": sum(r["elapsed"] for r in results),
    }
    not_json = [r["not_json"] for r in results if "not_json" in r]
    if not_json:
        counted: Counter[int] = Counter()
        for report in not_json:
            counted.update(report["statuses"])
        out["not_json"] = {"statuses": dict(counted), "sample": not_json[-1]["sample"]}
    return out


def total(deltas: list[Delta]) -> Delta:
    out = deltas[0]
    for d in deltas[1:]:
        out = out + d
    return out


def by_round(pieces: dict[str, list[tuple[float, Delta]]], idles: dict[str, Any]) -> list[float]:
    """zendo's server CPU per unit over the baseline's, round by round."""
    ratios = []
    for (units, delta), (b_units, b_delta) in zip(pieces["zendo"], pieces["bare"], strict=True):
        net, _gross = per_unit(delta, idles["zendo"], units, "server")
        b_net, _b_gross = per_unit(b_delta, idles["bare"], b_units, "server")
        ratios.append(round(net / b_net, 2) if b_net > 0 else float("nan"))
    return ratios


async def request_phase(
    args: argparse.Namespace,
    meter: Meter,
    st: Stack,
    helpers: Helpers,
    profiler: Profiler,
) -> dict[str, dict[str, Any]]:
    """Warm-up, the idle rates, then each route in its own window, the server's and the
    bare handlers' pieces alternated. {"zendo": {...}, "bare": {...}}, each with "idle"
    and per route its merged result, summed delta and per-round ratios."""
    sides = {"zendo": (st.zendo, helpers.real_driver), "bare": (st.bare_http, helpers.bare_driver)}
    out: dict[str, dict[str, Any]] = {"zendo": {}, "bare": {}}
    for _side, driver in sides.values():
        await driver.call("route", "login", 2, 10.0)
        for name in ("create", "get", "accept", *STATUSES, "me"):
            await driver.call("route", name, args.warm_jobs, args.req_rate)
    await asyncio.sleep(args.pause_s)
    for key, (side, _driver) in sides.items():
        side.watch(meter)
        out[key]["idle"] = await idle(meter, args.idle_s)
    idles = {key: out[key]["idle"] for key in sides}
    for name, _label in ROUTES:
        count = args.logins if name == "login" else args.req_jobs
        rate = args.login_rate if name == "login" else args.req_rate
        piece = max(1, count // args.rounds)
        pieces: dict[str, list[tuple[float, Delta]]] = {"zendo": [], "bare": []}
        results: dict[str, list[dict[str, Any]]] = {"zendo": [], "bare": []}
        for r, key in schedule(args.rounds, ("zendo", "bare")):
            side, driver = sides[key]
            side.watch(meter)
            # the last round: the first one also holds each pool connection's first
            # use of the route's statement (its prepare), which is not steady state
            profiled = key == "zendo" and r == args.rounds - 1
            if profiled:
                await profiler.attach(side.pid, name)
            result, delta = await measure(
                meter, driver.call("route", name, piece, rate, r * piece), settle_s=args.settle_s
            )
            if profiled:
                profiler.stop(name)
            results[key].append(result)
            pieces[key].append((result["ok"], delta))
        for key in sides:
            out[key][name] = {
                "result": merged(results[key]),
                "delta": total([d for _units, d in pieces[key]]),
            }
        out["zendo"][name]["rounds"] = by_round(pieces, idles)
        _print_route(name, out)
    return out


def _print_route(name: str, out: dict[str, dict[str, Any]]) -> None:
    for key in ("zendo", "bare"):
        row = out[key][name]
        ok = row["result"]["ok"]
        costs = {p: per_unit(row["delta"], out[key]["idle"], ok, p) for p in ("server", "pg")}
        slices = slices_per_unit(row["delta"], out[key]["idle"], ok)
        print(
            f"  {key:<5} {name:<11} {ok:>4} ok {row['result']['statuses']}: "
            + ", ".join(
                f"{p} {net:,.0f} µs (gross {gross:,.0f})" for p, (net, gross) in costs.items()
            )
            + f"; Redis {row['delta'].redis_cmds / max(1, ok):.1f} commands/request"
            + f"; server on a CPU {slices:.1f} times/request",
            flush=True,
        )
    print(f"        ratio by round: {out['zendo'][name]['rounds']}", flush=True)
    for key in ("zendo", "bare"):
        if "not_json" in out[key][name]["result"]:
            print(
                f"        {key} answered bodies that are not JSON: {out[key][name]['result']['not_json']}"
            )


async def story_phase(
    args: argparse.Namespace, meter: Meter, st: Stack, helpers: Helpers
) -> tuple[dict[str, Any], Delta]:
    """Whole jobs on the server (no baseline): create, offer, accept, four statuses."""
    await helpers.real_driver.call("fixes")  # a recent fix, to be ONLINE again after a job
    await asyncio.sleep(args.pause_s)
    st.zendo.watch(meter)
    story, delta = await measure(
        meter, helpers.real_driver.call("story", args.jobs, args.job_rate), args.settle_s
    )
    return story, delta


async def fix_phase(
    args: argparse.Namespace,
    meter: Meter,
    st: Stack,
    seeded: Seeded,
    helpers: Helpers,
    profiler: Profiler,
    clock: Clock,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """N artisan sockets on the server, N on the bare loop, and GEOADD from Python, in
    alternated pieces at the same rate; then the bare loop flat out. (zendo's, bare's)"""
    real: dict[str, Any] = {}
    base: dict[str, Any] = {}
    per_worker = args.sockets // args.workers
    workers = helpers.real_workers
    tokens = [a["token"] for a in seeded.fix_artisans]
    real["connected"] = await workers.connect(f"{st.zendo.base}/ws", tokens)
    await workers.call_all("rate", args.hz, args.warm_s, per_worker)  # all ONLINE
    geo = GeoLoad(args.redis_url, seeded.fix_artisans)
    try:
        await geo.place_all()
        await asyncio.sleep(args.pause_s)
        st.bare_ws.watch(meter)
        base["bare_idle"] = await idle(meter, args.idle_s)
        piece_s = args.fix_s / args.rounds
        pieces: dict[str, list[tuple[float, Delta]]] = {"zendo": [], "bare": [], "geoadd": []}
        idle_pieces: list[Delta] = []
        real["sent"] = real["rejected"] = 0
        for r, key in schedule(args.rounds, ("zendo", "bare", "geoadd", "idle")):
            if key == "idle":
                # the server's and Redis's idle rate with the sockets open and silent, a
                # piece a round: the server's periodic work (presence, write-behind aging)
                # comes in bursts that one reading may or may not hold
                st.zendo.watch(meter)
                _none, delta = await measure(meter, asyncio.sleep(args.idle_s))
                idle_pieces.append(delta)
            elif key == "zendo":
                st.zendo.watch(meter)
                if r == args.rounds - 1:
                    await profiler.attach(st.zendo.pid, "fixes")
                before, rejected0 = await fix_counters(st.zendo.port)
                results, delta = await measure(
                    meter,
                    workers.call_all("rate", args.hz, piece_s, per_worker, args.fix_step_m),
                )
                if r == args.rounds - 1:
                    profiler.stop("fixes")
                accepted, rejected = await fix_counters(st.zendo.port)
                real["sent"] += sum(x["sent"] for x in results)
                real["rejected"] += rejected - rejected0
                pieces["zendo"].append((accepted - before, delta))
            elif key == "bare":
                st.bare_ws.watch(meter)
                count0 = await bare_count(st.bare_ws.port)
                _r, delta = await measure(
                    meter, helpers.bare_workers.call_all("rate", args.hz, piece_s, per_worker)
                )
                pieces["bare"].append((await bare_count(st.bare_ws.port) - count0, delta))
            else:
                accepted_so_far = sum(units for units, _d in pieces["zendo"])
                elapsed_so_far = sum(d.elapsed for _u, d in pieces["zendo"])
                st.zendo.watch(meter)  # Redis's CPU is what counts here
                sent, delta = await measure(
                    meter, geo.run(accepted_so_far / elapsed_so_far, piece_s)
                )
                pieces["geoadd"].append((sent, delta))
    finally:
        await geo.close()
    real["fix_idle"] = base["redis_idle"] = total(idle_pieces).rates()
    real["accepted"] = sum(units for units, _d in pieces["zendo"])
    real["fix_delta"] = total([d for _u, d in pieces["zendo"]])
    real["fix_rounds"] = by_round(
        {"zendo": pieces["zendo"], "bare": pieces["bare"]},
        {"zendo": real["fix_idle"], "bare": base["bare_idle"]},
    )
    base["bare_frames"] = sum(units for units, _d in pieces["bare"])
    base["bare_delta"] = total([d for _u, d in pieces["bare"]])
    base["geo_sent"] = sum(units for units, _d in pieces["geoadd"])
    base["geo_delta"] = total([d for _u, d in pieces["geoadd"]])
    await workers.call_all("close")
    clock.say(
        f"fixes: {real['connected']} sockets, sent {real['sent']:,}, accepted "
        f"{real['accepted']:,.0f}, rejected {real['rejected']:,.0f} in "
        f"{real['fix_delta'].elapsed:.1f} s; bare loop {base['bare_frames']:,.0f} frames; "
        f"GEOADD {base['geo_sent']:,}; server ratio by round {real['fix_rounds']}"
    )
    st.bare_ws.watch(meter)
    base["flat_frames"], base["flat_delta"] = await flat_out(
        args, meter, helpers.bare_workers, st.bare_ws.port
    )
    base["speed_ref"] = base["flat_frames"] / base["flat_delta"].elapsed
    await helpers.bare_workers.call_all("close")
    return real, base


async def speed_reference(
    args: argparse.Namespace, meter: Meter, st: Stack, helpers: Helpers
) -> float:
    """The bare loop flat out before the measured phases (frames/s); fix_phase takes it
    again at the end."""
    st.bare_ws.watch(meter)
    frames, delta = await flat_out(args, meter, helpers.bare_workers, st.bare_ws.port)
    return frames / delta.elapsed
