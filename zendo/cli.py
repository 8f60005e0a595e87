"""The `zendo` command: serve, migrate, create-admin, seed."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import uvloop
from aiohttp import web

from core.settings import Settings, SettingsError
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


async def _serve(settings: Settings) -> None:
    from zendo.app import create_app
    from zendo.middleware import JsonAccessLogger
    from zendo.system.listener import MultiAcceptSite

    app = create_app(settings)
    runner = web.AppRunner(app, access_log_class=JsonAccessLogger, handle_signals=False)
    await runner.setup()
    # backlog sized for thousands of sockets reconnecting at once, and all of a wake's
    # waiting connections accepted at once (uvloop's own listener takes one per turn)
    site = MultiAcceptSite(runner, settings.host, settings.port, backlog=4096)
    await site.start()
    logging.getLogger("zendo").info(
        "zendo serving on http://%s:%s (payments %s)",
        settings.host,
        settings.port,
        "enabled" if settings.payments_enabled else "disabled: no STRIPE_API_KEY",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with _logging_off_the_loop():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"zendo: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        changes = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
        if changes:
            settings = settings.replace(**changes)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_serve(settings))
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


if __name__ == "__main__":
    sys.exit(main())
