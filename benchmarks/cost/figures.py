"""The run's figures: CPU per unit of work (net and gross), the ratios to the bare
baselines, the targets and the capacity estimates."""

from __future__ import annotations

import argparse
from typing import Any

from benchmarks.cost.constants import FLUSH_LINGER_S, HOT_ROUTES, ROUTES, TARGETS
from benchmarks.cost.meter import per_unit, slices_per_unit


def ratio_of(a: float, b: float) -> float:
    return round(a / b, 2) if b > 0 and a == a else float("nan")


def figures(
    args: argparse.Namespace, real: dict[str, Any], base: dict[str, Any], fix_rate: float
) -> dict[str, Any]:
    """Every figure of the result, from the server's phases (`real`) and the baselines."""
    connected, sent, accepted, rejected = (
        real[k] for k in ("connected", "sent", "accepted", "rejected")
    )
    fix_delta, fix_idle, rate = real["fix_delta"], real["fix_idle"], fix_rate
    story, story_delta = real["story"], real["story_delta"]
    completed = story["outcomes"].get("completed", 0)
    geo_sent, geo_delta, redis_idle = base["geo_sent"], base["geo_delta"], base["redis_idle"]
    bare_delta, bare_idle, bare_frames = base["bare_delta"], base["bare_idle"], base["bare_frames"]
    flat_delta, flat_frames, speed_ref = base["flat_delta"], base["flat_frames"], base["speed_ref"]
    real_routes, bare_routes = real["routes"], base["routes"]

    fix: dict[str, Any] = {
        "sockets": connected,
        "hz": args.hz,
        "step_m": args.fix_step_m,
        "window_s": round(fix_delta.elapsed, 2),
        "sent": sent,
        "accepted": accepted,
        "rejected": rejected,
        "accepted_per_s": round(rate, 1),
        "idle_cores": {k: round(v, 4) for k, v in fix_idle.items()},
        "ratio_by_round": real["fix_rounds"],
    }
    for part in ("server", "redis", "pg"):
        net, gross = per_unit(fix_delta, fix_idle, accepted, part)
        fix[f"{part}_us"], fix[f"{part}_us_gross"] = round(net, 2), round(gross, 2)
    fix["redis_commands_per_fix"] = round(fix_delta.redis_cmds / max(1, accepted), 3)
    fix["redis_connections_opened"] = fix_delta.redis_conns
    fix["redis_command_us"] = {
        cmd: round(usec / max(1, accepted), 2)
        for cmd, usec in sorted(fix_delta.redis_usec.items(), key=lambda kv: -kv[1])
        if usec / max(1, accepted) >= 0.01
    }
    geo_net, geo_gross = per_unit(geo_delta, redis_idle, geo_sent, "redis")
    geo = {
        "commands": geo_sent,
        "per_pipeline": round(rate * FLUSH_LINGER_S, 1),
        "redis_us": round(geo_net, 2),
        "redis_us_gross": round(geo_gross, 2),
    }
    bare_net, bare_gross = per_unit(bare_delta, bare_idle, bare_frames, "server")
    bare_loop = {
        "frames": bare_frames,
        "us_per_frame": round(bare_net, 2),
        "us_per_frame_gross": round(bare_gross, 2),
        "flat_frames_per_s": round(speed_ref),
        "flat_us_per_frame": round(flat_delta.server / max(1, flat_frames) * 1e6, 2),
    }
    routes: dict[str, Any] = {}
    for name, label in ROUTES:
        z, b = real_routes[name], bare_routes[name]
        row: dict[str, Any] = {
            "label": label,
            "ok": z["result"]["ok"],
            "bare_ok": b["result"]["ok"],
        }
        row["non_2xx"] = {k: v for k, v in z["result"]["statuses"].items() if not 200 <= k < 300}
        for part in ("server", "pg", "redis"):
            net, gross = per_unit(z["delta"], real_routes["idle"], z["result"]["ok"], part)
            row[f"{part}_us"], row[f"{part}_us_gross"] = round(net, 1), round(gross, 1)
            bnet, bgross = per_unit(b["delta"], bare_routes["idle"], b["result"]["ok"], part)
            row[f"bare_{part}_us"], row[f"bare_{part}_us_gross"] = round(bnet, 1), round(bgross, 1)
        # Wake-ups of the server's threads per request, net of the idle rate (the bare
        # handler's: the request's bytes, then each statement's answer).
        slices = slices_per_unit(z["delta"], real_routes["idle"], z["result"]["ok"])
        bare_slices = slices_per_unit(b["delta"], bare_routes["idle"], b["result"]["ok"])
        row["server_slices"], row["bare_server_slices"] = round(slices, 2), round(bare_slices, 2)
        ok = max(1, z["result"]["ok"])
        row["redis_commands_per_request"] = round(z["delta"].redis_cmds / ok, 2)
        row["redis_connections_opened"] = z["delta"].redis_conns
        row["ratio"] = ratio_of(row["server_us"], row["bare_server_us"])
        row["ratio_gross"] = ratio_of(row["server_us_gross"], row["bare_server_us_gross"])
        row["ratio_by_round"] = z["rounds"]
        routes[name] = row
    job: dict[str, Any] = {"jobs": args.jobs, "completed": completed, "outcomes": story["outcomes"]}
    for part in ("server", "pg", "redis"):
        net, gross = per_unit(story_delta, real_routes["idle"], completed, part)
        job[f"{part}_us"], job[f"{part}_us_gross"] = round(net, 1), round(gross, 1)
    job["total_us"] = round(job["server_us"] + job["pg_us"] + job["redis_us"], 1)
    job["redis_commands_per_job"] = round(story_delta.redis_cmds / max(1, completed), 1)
    job["total_us_gross"] = round(
        job["server_us_gross"] + job["pg_us_gross"] + job["redis_us_gross"], 1
    )
    job["jobs_per_s"] = round(completed / story["elapsed"], 1)

    ratios = {
        "server_fix_vs_bare_frame": ratio_of(fix["server_us"], bare_loop["us_per_frame"]),
        "redis_fix_vs_geoadd": ratio_of(fix["redis_us"], geo["redis_us"]),
        "server_fix_vs_bare_frame_gross": ratio_of(
            fix["server_us_gross"], bare_loop["us_per_frame_gross"]
        ),
        "redis_fix_vs_geoadd_gross": ratio_of(fix["redis_us_gross"], geo["redis_us_gross"]),
        **{f"route_{name}": routes[name]["ratio"] for name, _l in ROUTES},
    }
    targets = {
        "redis_fix_vs_geoadd": {"limit": TARGETS["redis_fix"]},
        "server_fix_vs_bare_frame": {"limit": TARGETS["server_fix"]},
        **{f"route_{name}": {"limit": TARGETS["route"]} for name in HOT_ROUTES},
    }
    for key, target in targets.items():
        target["ratio"] = ratios[key]
        target["met"] = bool(ratios[key] <= target["limit"])
    socket_idle_us = fix_idle["server"] * 1e6 / max(1, connected)
    redis_socket_idle_us = fix_idle["redis"] * 1e6 / max(1, connected)
    capacity = {
        "artisans_per_server_core_at_0.25_hz": round(1e6 / (fix["server_us"] / 4 + socket_idle_us)),
        "artisans_per_redis_core_at_0.25_hz": round(
            1e6 / (fix["redis_us"] / 4 + redis_socket_idle_us)
        ),
        "fixes_per_s_per_server_core": round(1e6 / fix["server_us"]),
        "jobs_per_s_per_server_core": round(1e6 / job["server_us"], 1),
        "jobs_per_s_per_core_all": round(1e6 / job["total_us"], 1),
        "server_idle_us_per_socket_s": round(socket_idle_us, 2),
    }
    return dict(
        speed_ref_bare_frames_per_s=bare_loop["flat_frames_per_s"],
        fix=fix,
        geoadd=geo,
        bare_loop=bare_loop,
        routes=routes,
        job=job,
        ratios=ratios,
        targets=targets,
        capacity=capacity,
        idle_cores={
            "requests": {k: round(v, 4) for k, v in real_routes["idle"].items()},
            "bare_requests": {k: round(v, 4) for k, v in bare_routes["idle"].items()},
            "fixes": fix["idle_cores"],
            "bare_loop": {k: round(v, 4) for k, v in bare_idle.items()},
        },
        pg_background_cores_during_fixes=round(fix_delta.pg_bg / fix_delta.elapsed, 4),
    )
