"""What a run prints: progress lines, the table, and the strict-JSON form of the result."""

from __future__ import annotations

import time
from typing import Any

from benchmarks.cost.constants import HOT_ROUTES, TARGETS


class Clock:
    def __init__(self) -> None:
        self.began = time.monotonic()

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.began:5.1f} s] {text}", flush=True)


def fmt(value: float, digits: int = 1) -> str:
    if value != value:  # NaN
        return "-"
    return f"{value:,.{digits}f}"


def check(ratio: float, limit: float) -> str:
    if ratio != ratio:
        return f"≤ {limit:g}× ?"
    return f"≤ {limit:g}× {'✔' if ratio <= limit else '✘'}"


def clean(value: Any) -> Any:
    """NaN -> None, so the JSON line is strict JSON."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def print_table(res: dict[str, Any]) -> None:
    fix, geo, bare, job = res["fix"], res["geoadd"], res["bare_loop"], res["job"]
    ratios, cap = res["ratios"], res["capacity"]
    rows: list[tuple[str, str, str, str, str, str]] = [
        (
            f"server CPU per accepted fix ({fix['sockets']:,} sockets × {fix['hz']:g} Hz, "
            f"{fix['step_m']:g} m a fix)",
            fmt(fix["server_us"]),
            fmt(fix["server_us_gross"]),
            f"bare loop {fmt(bare['us_per_frame'])} /frame (gross {fmt(bare['us_per_frame_gross'])})",
            f"{fmt(ratios['server_fix_vs_bare_frame'], 2)} "
            f"(gross {fmt(ratios['server_fix_vs_bare_frame_gross'], 2)})",
            check(ratios["server_fix_vs_bare_frame"], TARGETS["server_fix"]),
        ),
        (
            "Redis CPU per accepted fix",
            fmt(fix["redis_us"]),
            fmt(fix["redis_us_gross"]),
            f"GEOADD {fmt(geo['redis_us'])} ({fmt(geo['per_pipeline'], 0)}/pipeline; "
            f"gross {fmt(geo['redis_us_gross'])})",
            f"{fmt(ratios['redis_fix_vs_geoadd'], 2)} "
            f"(gross {fmt(ratios['redis_fix_vs_geoadd_gross'], 2)})",
            check(ratios["redis_fix_vs_geoadd"], TARGETS["redis_fix"]),
        ),
        ("PostgreSQL CPU per accepted fix", fmt(fix["pg_us"]), fmt(fix["pg_us_gross"]), "", "", ""),
        (
            "Redis commands per accepted fix / per job (incl. in scripts)",
            f"{fix['redis_commands_per_fix']} / {job['redis_commands_per_job']}",
            "",
            "GEOADD: 1 per fix",
            "",
            "",
        ),
    ]
    for name, row in res["routes"].items():
        mark = " (bcrypt)" if name == "login" else ""
        rows.append(
            (
                f"server CPU per request {row['label']}{mark}",
                fmt(row["server_us"], 0),
                fmt(row["server_us_gross"], 0),
                f"bare {fmt(row['bare_server_us'], 0)}",
                fmt(row["ratio"], 2),
                check(row["ratio"], TARGETS["route"]) if name in HOT_ROUTES else "(not a target)",
            )
        )
    for name, row in res["routes"].items():
        rows.append(
            (
                f"  PostgreSQL / Redis CPU per request {name}",
                f"{fmt(row['pg_us'], 0)} / {fmt(row['redis_us'], 0)}",
                f"{fmt(row['pg_us_gross'], 0)} / {fmt(row['redis_us_gross'], 0)}",
                f"bare PG {fmt(row['bare_pg_us'], 0)}",
                "",
                "",
            )
        )
    rows += [
        (
            f"per job ({job['completed']}/{job['jobs']} completed): server + PG + Redis",
            f"{fmt(job['server_us'], 0)} + {fmt(job['pg_us'], 0)} + {fmt(job['redis_us'], 0)}"
            f" = {fmt(job['total_us'], 0)}",
            fmt(job["total_us_gross"], 0),
            "",
            "",
            "",
        ),
        (
            "speed reference: bare loop flat out",
            f"{bare['flat_frames_per_s']:,} frames/s",
            "",
            f"{fmt(bare['flat_us_per_frame'], 2)} µs/frame",
            "",
            "",
        ),
    ]
    head = ("measure", "µs net", "µs gross", "baseline (µs net)", "ratio", "target")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(6)]
    print(
        f"\n== cost model, {res['date']}, commit {res['commit']}, speed reference "
        f"{res['speed_ref_bare_frames_per_s']:,} frames/s =="
    )
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(
        "\nnet = (window CPU - idle rate x window) / units; ratios and targets on net (the "
        "fix's gross ratios in brackets: at a low rate per socket, the idle reading holds "
        "heartbeats that stop once the sockets send). "
        "Idle (cores) before the requests: "
        + ", ".join(f"{k} {v:.3f}" for k, v in res["idle_cores"]["requests"].items())
        + "; between the fix pieces: "
        + ", ".join(f"{k} {v:.3f}" for k, v in res["idle_cores"]["fixes"].items())
    )
    print(
        "Redis µs per accepted fix inside commands (INFO commandstats; the rest of its CPU "
        "is network, parsing and replies): "
        + ", ".join(f"{cmd} {us}" for cmd, us in fix["redis_command_us"].items())
    )
    print(
        f"sustained in this run: {fix['accepted_per_s']:,.0f} fixes/s accepted "
        f"({fix['accepted']:,.0f} of {fix['sent']:,} sent), {job['jobs_per_s']} jobs/s end to end"
    )
    print(
        "capacity estimate from CPU cost, one core of this machine: "
        f"{cap['artisans_per_server_core_at_0.25_hz']:,} artisans at 1 fix / 4 s on the server "
        f"({cap['server_idle_us_per_socket_s']} µs/s idle per socket), "
        f"{cap['artisans_per_redis_core_at_0.25_hz']:,} on Redis; "
        f"{cap['jobs_per_s_per_server_core']} jobs/s on the server, "
        f"{cap['jobs_per_s_per_core_all']} jobs/s server + PostgreSQL + Redis"
    )
    met = [k for k, t in res["targets"].items() if t["met"]]
    missed = [k for k, t in res["targets"].items() if not t["met"]]
    print(f"targets met: {', '.join(met) or 'none'}; missed: {', '.join(missed) or 'none'}")
    print(
        f"alternated in {res['rounds']} rounds (A B B A ...): server ratio by round, fixes "
        f"{fix['ratio_by_round']}; "
        + "; ".join(f"{name} {row['ratio_by_round']}" for name, row in res["routes"].items())
    )
    print(
        f"speed reference at the start {res['speed_ref_start_frames_per_s']:,}, at the end "
        f"{res['speed_ref_bare_frames_per_s']:,} frames/s ({res['speed_drift']:+.0%})"
    )
    print(
        "load average start "
        + " ".join(f"{x:.2f}" for x in res["loadavg_start"])
        + ", end "
        + " ".join(f"{x:.2f}" for x in res["loadavg_end"])
        + f"; wall {res['wall_s']} s"
    )
