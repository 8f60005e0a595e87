"""The `zendo` command: serve, migrate, create-admin, seed, simulate.

`zendo serve --workers N` (N > 1) runs N worker processes on one port: each is a whole
`zendo serve` of its own (its own node id, pools, loop and log writer), a node of the
multi-node design, listening with SO_REUSEPORT so the kernel spreads connections among
them. This process only supervises: it starts them (with a shared directory for their
metrics: `/metrics` answers for the whole pool), forwards SIGINT/SIGTERM, starts a
crashed one again (a few times a minute at most) and exits when they have.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import uvloop
from aiohttp import web
from prometheus_client.multiprocess import mark_process_dead

from core.settings import DISPATCH_POLICIES, Settings, SettingsError
from zendo.system.logwriter import LogWriter


@contextlib.contextmanager
def _logging_off_the_loop() -> Iterator[None]:
    """Records go to a thread that writes them in batches (dispatch/system/logwriter.py);
    leaving writes what is queued."""
    writer = LogWriter(sys.stderr)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(writer.handler)
    writer.start()
    try:
        yield
    finally:
        root.removeHandler(writer.handler)
        writer.stop()


async def _serve(settings: Settings, pool_fd: int | None = None) -> None:
    """Serve until SIGINT/SIGTERM. `pool_fd`: this process is a worker of a pool; the
    port is shared (SO_REUSEPORT) and the descriptor, the read end of a pipe nothing
    writes to, turns readable (EOF) when the supervisor is gone: the worker stops then."""
    from gateway.turns import PerTurn
    from zendo.app import create_app
    from zendo.middleware import JsonAccessLogger
    from zendo.system.handshake_screen import HandshakeScreen
    from zendo.system.listener import MultiAcceptSite
    from zendo.system.request_screen import WEBSOCKET_ENDS_PER_TURN, Door, screened

    app = create_app(settings)
    runner = web.AppRunner(app, access_log_class=JsonAccessLogger, handle_signals=False)
    await runner.setup()
    assert runner.server is not None  # made by setup()
    log = logging.getLogger("zendo")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:  # a port in use fails start(): the started app is cleaned up (else: a hang)
        # backlog sized for thousands of sockets reconnecting at once, and all of a
        # wake's waiting connections accepted at once (uvloop's listener takes one a turn);
        # while the gateway refuses new sockets, their handshakes are answered at the door
        site = MultiAcceptSite(
            runner,
            settings.host,
            settings.port,
            backlog=4096,
            reuse_port=pool_fd is not None,
            screen=HandshakeScreen.of(app),
            # and while it sheds load, new jobs are refused in the turn that reads them;
            # sockets closing together are let through a share a turn, requests between
            protocol_factory=screened(
                runner.server, Door.of(app), PerTurn(WEBSOCKET_ENDS_PER_TURN)
            ),
        )
        await site.start()
        log.info(
            "zendo serving on http://%s:%s (node %s, pid %d; payments %s)",
            settings.host,
            site.port,
            settings.node_id,
            os.getpid(),
            "enabled" if settings.payments_enabled else "disabled: no STRIPE_API_KEY",
        )
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if pool_fd is not None:

            def orphaned() -> None:
                log.warning("the supervising process is gone: stopping")
                loop.remove_reader(pool_fd)
                stop.set()

            loop.add_reader(pool_fd, orphaned)
        await stop.wait()
    finally:
        await runner.cleanup()


# A worker that exits unasked is started again after RESTART_DELAY_S, unless workers
# have already been restarted MAX_RESTARTS times in the last RESTART_WINDOW_S: then
# something is wrong that restarting will not fix (database gone, port taken) and the
# whole pool stops with exit code 1, for the orchestrator to see.
RESTART_DELAY_S = 1.0
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0
# Where the pool's metrics files go when it exists (a tmpfs: every counter update writes
# to a mapped file, which on a disk-backed directory the kernel would keep writing back).
SHARED_MEMORY = "/dev/shm"


def _pool_port(host: str, port: int) -> int:
    """The port the workers will share, checked free by binding it WITHOUT SO_REUSEPORT
    (a server already on it, another pool included, makes this fail rather than have
    the workers join its listeners); port 0 picks a free port here, for all of them."""
    family, _, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the workers do
        probe.bind(address)
        bound: int = probe.getsockname()[1]
        return bound


async def _supervise(settings: Settings, workers: int, metrics_dir: str) -> int:
    """Run `workers` worker processes until SIGINT/SIGTERM; 0 when they all stopped as
    asked, 1 when the pool gave up on crashing workers."""
    log = logging.getLogger("zendo")
    loop = asyncio.get_running_loop()
    # The workers get the read end; the write end is only ever in this process, so they
    # see EOF once it is gone however it ended (SIGKILL included) and stop.
    pool_fd, keep_fd = os.pipe()
    argv = [
        sys.executable,
        "-m",
        "zendo.cli",
        "serve",
        "--host",
        settings.host,
        "--port",
        str(settings.port),
        "--pool-fd",
        str(pool_fd),
    ]
    # The pool's metrics: each worker's values in files in `metrics_dir`, which `/metrics`
    # adds up whichever worker answers (core/metrics.py); a dead worker's counters stay
    # (summed, so they never go backwards), its live gauges go with it.
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    running: dict[int, asyncio.subprocess.Process] = {}
    warming: list[asyncio.subprocess.Process] = []  # `zendo warmup`, while it runs
    stopping: list[int] = []  # the signals received
    stopped = asyncio.Event()
    restarts: collections.deque[float] = collections.deque()

    def stop(sig: int) -> None:
        if not stopping:
            log.info("zendo: stopping %d workers (%s)", len(running), signal.Signals(sig).name)
        stopping.append(sig)
        stopped.set()
        for proc in [*warming, *running.values()]:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)

    async def worker(index: int) -> bool:
        """One worker slot: True when it ended as asked."""
        while True:
            # Its own session: a terminal's Ctrl-C reaches the supervisor only, which
            # forwards it once.
            proc = await asyncio.create_subprocess_exec(
                *argv, pass_fds=(pool_fd,), start_new_session=True, env=env
            )
            running[index] = proc
            log.info("zendo: worker %d started (pid %d)", index, proc.pid)
            if stopping:  # asked to stop while it was being started
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(stopping[0])
            code = await proc.wait()
            del running[index]
            mark_process_dead(proc.pid, metrics_dir)  # type: ignore[no-untyped-call]
            if stopping:
                return code == 0 or -code in stopping
            log.error("zendo: worker %d (pid %d) exited with %d", index, proc.pid, code)
            now = loop.time()
            while restarts and restarts[0] < now - RESTART_WINDOW_S:
                restarts.popleft()
            if len(restarts) >= MAX_RESTARTS:
                log.error(
                    "zendo: %d restarts within %.0f s: stopping every worker",
                    len(restarts),
                    RESTART_WINDOW_S,
                )
                stop(signal.SIGTERM)
                return False
            restarts.append(now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopped.wait(), RESTART_DELAY_S)
            if stopping:
                return True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop, sig)
    log.info(
        "zendo: %d workers on http://%s:%s (pid %d); each says when it serves",
        workers,
        settings.host,
        settings.port,
        os.getpid(),
    )
    try:
        # The matching kernels compiled once, into numba's on-disk cache, before the
        # workers load them from it: else, on a fresh checkout, every worker compiles
        # them itself, all at once, and the pool listens only after ~25 s of two cores.
        started = loop.time()
        warm = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "zendo.cli", "warmup", start_new_session=True
        )
        warming.append(warm)
        code = await warm.wait()
        warming.clear()
        if stopping:
            return 0
        if code == 0:
            log.info("zendo: matching kernels ready in %.1f s", loop.time() - started)
        else:
            log.warning("zendo: the kernel warm-up exited %d: each worker compiles its own", code)
        ended = await asyncio.gather(*(worker(i) for i in range(workers)))
    finally:
        os.close(pool_fd)
        os.close(keep_fd)
    return 0 if all(ended) else 1


def _serve_pool(settings: Settings, workers: int) -> int:
    try:
        port = _pool_port(settings.host, settings.port)
    except OSError as exc:
        print(f"zendo: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
        return 1
    # A fresh directory per pool for its metrics, removed when the pool ends.
    parent = SHARED_MEMORY if os.path.isdir(SHARED_MEMORY) else None
    metrics_dir = tempfile.mkdtemp(prefix="zendo-metrics-", dir=parent)
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(_supervise(settings.replace(port=port), workers, metrics_dir))
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _latlon(text: str) -> tuple[float, float]:
    try:
        lat, lon = (float(x) for x in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError("expected LAT,LON") from exc
    return lat, lon


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zendo", description="Zendo dispatch service")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve HTTP + WebSocket")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--workers",
        type=_positive_int,
        help="processes serving the port, each a node (default: ZENDO_WORKERS, else the "
        "machine's cores); with port 0 one free port is picked for all of them",
    )
    # Internal: set by the supervisor on the workers it starts.
    serve.add_argument("--pool-fd", type=int, help=argparse.SUPPRESS)
    sub.add_parser(
        "warmup",
        help="compile the matching kernels into numba's on-disk cache (`zendo serve` "
        "does it before starting its workers; `make setup` too)",
    )
    sub.add_parser("migrate", help="apply sql/ migrations")
    admin = sub.add_parser("create-admin", help="create (or reset) an admin user")
    admin.add_argument("--email", required=True)
    admin.add_argument("--password", required=True)
    seed = sub.add_parser("seed", help="bulk-create verified artisans and clients")
    seed.add_argument("--artisans", type=int, required=True)
    seed.add_argument("--clients", type=int, required=True)
    seed.add_argument("--out", type=Path, required=True)
    seed.add_argument("--center", type=_latlon, default=(48.8566, 2.3522))
    seed.add_argument("--radius-km", type=float, default=15.0)
    sim = sub.add_parser(
        "simulate", help="replay a synthetic day through dispatch policies (no server needed)"
    )
    sim.add_argument("--scenario", default="builtin:paris-day", help="FILE.yaml or builtin:NAME")
    sim.add_argument(
        "--policies",
        type=_policies,
        default=("sequential",),
        help=f"comma-separated, of: {', '.join(DISPATCH_POLICIES)}",
    )
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--out", type=Path, required=True)
    return parser


def _policies(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in DISPATCH_POLICIES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown policy {', '.join(unknown) or '(none)'}; one of {', '.join(DISPATCH_POLICIES)}"
        )
    return names


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with _logging_off_the_loop():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    if args.command == "warmup":
        from matching import warmup

        warmup()
        return 0
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"zendo: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        changes = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
        if changes:
            settings = settings.replace(**changes)
        _lower_priority(settings.nice)
        workers = args.workers or settings.workers
        if workers > 1 and args.pool_fd is None:
            return _serve_pool(settings, workers)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_serve(settings, args.pool_fd))
        return 0
    if args.command == "migrate":
        from dispatch.migrate import MigrationError, migrate

        try:
            applied = asyncio.run(migrate(settings.database_url))
        except MigrationError as exc:
            print(f"zendo migrate: {exc}", file=sys.stderr)
            return 1
        print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
        return 0
    if args.command == "simulate":
        return _simulate(settings, args)
    from dispatch.auth import commands

    if args.command == "create-admin":
        return asyncio.run(commands.create_admin(settings, args.email, args.password))
    if args.command == "seed":
        return asyncio.run(
            commands.seed(
                settings,
                artisans=args.artisans,
                clients=args.clients,
                out=args.out,
                center=args.center,
                radius_km=args.radius_km,
            )
        )
    return 2


def _lower_priority(niceness: int) -> None:
    """Run at `niceness` (Settings.nice), unless this process runs nicer already; the
    workers it starts inherit it."""
    if niceness > os.getpriority(os.PRIO_PROCESS, 0):
        os.setpriority(os.PRIO_PROCESS, 0, niceness)


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    # Imported here as the other commands' modules are: `zendo serve` need not load
    # matplotlib and scipy.
    from dispatch.simulate import ScenarioError
    from dispatch.simulate.runner import run

    try:
        report = run(
            settings, scenario=args.scenario, policies=args.policies, seed=args.seed, out=args.out
        )
    except ScenarioError as exc:
        print(f"zendo simulate: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"zendo simulate: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
        return 1
    for name, row in report["policies"].items():
        print(
            f"{name}: {row['assigned']}/{row['jobs']} assigned, {row['unfulfilled']} unfulfilled,"
            f" time to assign p50 {row['time_to_assign_s']['p50']} s"
        )
    print(f"report: {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
