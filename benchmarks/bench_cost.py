"""Cost model (not a test): CPU per unit of work, against bare baselines, in one run.

    .venv/bin/python -m benchmarks.bench_cost [--quick] [--database-url URL] [--redis-url URL]

CPU is read from /proc (the `schedstat` run time of every thread, in ns), never from
wall time: per accepted fix, per HTTP request by route and per dispatched job, for the
server, Redis and the PostgreSQL backends of the database used. Every unit cost is given
gross (the window's CPU / units) and net of the idle rate of the same processes (what
one more unit costs): measured just before the requests, and for the fixes in a piece of
each round (the sockets open and silent); targets are judged on the net figures. Each
route's line also says how many times per request the server's threads were put on a
CPU (schedstat's time slices, net; the bare handler's: one for the request and one
for each statement's answer): on a VM that halts idle vCPUs every wake-up costs, and these
counts move much less from run to run than the CPU figures do.

One run, in order (it TRUNCATEs the database and FLUSHes the Redis db: use scratch ones;
the bare handlers get a database of their own beside it, `<name>_bare`, made and migrated
if missing, TRUNCATEd, so the server's dispatcher never sees their jobs):
  1. seeds the same verified artisans and clients in both databases; starts, side by
     side, one `zendo serve`, the bare aiohttp + asyncpg handlers
     (benchmarks/bare_handler.py) and the bare aiohttp receive loop
     (benchmarks/bare_ws.py), a request driver process (aiohttp) for each HTTP server
     (the server's also holds artisan and client sockets); the bare loop flat out (the
     speed reference);
  2. requests: each route in its own window at a steady rate (login, me, create, get,
     accept, the four status changes), the server's and the bare handlers' driven
     exactly alike; then M whole jobs on the server (create -> offer on the artisan's
     socket -> `offer.accept` over the socket -> four status changes);
  3. fixes: N artisan sockets on the server (benchmarks/loadgen.py processes) at a
     steady rate, N on the bare loop at the same rate (CPU per frame), one pipelined
     GEOADD per fix from Python at the rate the server accepted and its flush cadence
     (Redis CPU per fix), and the idle rates; then the bare loop flat out again.
Every measure and its baseline run in alternated pieces (--rounds, in A B B A order), the
CPU of the pieces summed: the machine's speed moves by half within minutes on a shared
VM, and a steady drift then weighs on both sides alike. The table gives the ratios of the
sums; the ratios round by round show how much the pieces agree. Prints one table,
capacity estimates per core, the speed reference at the start and at the end, and a
final JSON line with every number.

The server is `zendo serve` as deployed (its own worker count, unless --server-workers):
its CPU is that of its whole process tree. Logins use bcrypt cost 10 (the lowest the
server accepts) and a login rate limit raised out of the way (every login comes from
127.0.0.1); offers last 600 s so none expires between two windows. The request and job
artisans are PLUMBERs near the centre of Paris; the fix-phase ones have the other
specialties, so no job is ever offered to a socket that does not answer.

Redis: by default a private `redis-server` on a free port (others' work on a shared
Redis would count as ours); `--redis-url` uses that one instead (pid from INFO server).
`--profile DIR` also samples the server with py-spy in the last round of the fix and each
request window (steady state: the first round holds each pool connection's first prepare
of the route's statement), only while a thread holds the GIL (`--gil`: the loop asleep in
`epoll_wait` is not counted as work, as plain py-spy counts it on this VM); it perturbs the
CPU figures of that run.
"""

from __future__ import annotations

import argparse
import json
import os

from benchmarks.arguments import positive_float, positive_int
from benchmarks.cost.main import main
from benchmarks.cost.report import clean
from benchmarks.cost.seed import bare_dsn
from benchmarks.loadgen import DEFAULT_STEP_M
from benchmarks.scratch_db import database_url


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--database-url",
        type=database_url,
        default=os.environ.get("ZENDO_DATABASE_URL", "postgresql:///zendo_cost"),
        help="TRUNCATEd: a scratch database",
    )
    p.add_argument(
        "--redis-url",
        default="private",
        help="'private' (default): a redis-server of its own; else a URL (FLUSHed)",
    )
    p.add_argument("--quick", action="store_true", help="small counts (the smoke test)")
    p.add_argument("--sockets", type=positive_int, help="artisan sockets in the fix phase")
    p.add_argument("--hz", type=positive_float, help="fixes per socket per second")
    p.add_argument("--fix-s", type=positive_float, help="fix window (and baselines) seconds")
    p.add_argument(
        "--fix-step-m",
        type=float,
        default=DEFAULT_STEP_M,
        help="metres each artisan moves per fix (default: a walking pace; over 25 m, every "
        "fix is a stream row for the index mirrors)",
    )
    p.add_argument("--req-jobs", type=positive_int, help="requests per route window")
    p.add_argument("--req-rate", type=positive_float, help="requests per second in a route window")
    p.add_argument("--jobs", type=positive_int, help="whole jobs in the job window")
    p.add_argument("--job-rate", type=positive_float, help="jobs started per second")
    p.add_argument(
        "--rounds", type=positive_int, help="pieces each measure and its baseline alternate in"
    )
    p.add_argument(
        "--bare-database-url",
        type=database_url,
        help="the bare handlers' database (default: <name>_bare)",
    )
    p.add_argument(
        "--server-workers",
        type=positive_int,
        help="zendo serve --workers N (default: the server's own default)",
    )
    p.add_argument("--profile", metavar="DIR", help="py-spy the server (perturbs its CPU)")
    args = p.parse_args(argv)
    quick = args.quick
    args.workers = 2  # load generator processes
    defaults = {
        "sockets": 400 if quick else 4000,
        "hz": 2.0 if quick else 1.0,
        "fix_s": 1.5 if quick else 12.0,
        "req_jobs": 30 if quick else 300,
        "req_rate": 150.0 if quick else 200.0,
        "jobs": 15 if quick else 150,
        "job_rate": 20.0 if quick else 30.0,
        "rounds": 2 if quick else 4,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.bare_database_url is None:
        args.bare_database_url = bare_dsn(args.database_url)
    if args.sockets < args.workers:
        p.error(f"--sockets must be at least {args.workers} (one per load generator)")
    args.warm_jobs = 3 if quick else 20
    args.logins = 4 if quick else 20
    args.login_rate = 10.0
    args.clients = max(20, args.req_jobs // 2)
    args.idle_s = 0.5 if quick else 3.0
    args.warm_s = 0.6 if quick else 3.0
    args.settle_s = 0.1 if quick else 0.2
    args.pause_s = 0.3 if quick else 1.0
    args.flat_sockets = 300 if quick else 1000
    args.flat_s = 1.0 if quick else 5.0
    return args


def run(argv: list[str] | None = None) -> None:
    import uvloop

    result = uvloop.run(main(parse(argv)))
    print(json.dumps(clean(result), default=str))


if __name__ == "__main__":
    run()
