"""Starting and stopping the processes under test: the server, the bare baselines and
the private Redis."""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import subprocess
import sys
import time

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from benchmarks.children import die_with_parent
from benchmarks.cost.constants import BCRYPT_ROUNDS, ROOT, SECRET


def _in_child() -> None:
    """In each child before it runs: its descriptors raised, and SIGTERM for it when the
    bench dies, however it dies (the bench starts every child from its main thread, the
    one whose end the kernel watches). An orphaned server pool would keep its ~80
    PostgreSQL connections, and the next run's server could not start."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
    die_with_parent()


def start_private_redis(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *("redis-server", "--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--maxclients", "20000"),
        ],
        stdout=open("/tmp/zendo-bench-cost-redis.log", "wb"),
        stderr=subprocess.STDOUT,
        preexec_fn=_in_child,
    )


async def start_redis(args: argparse.Namespace) -> tuple[subprocess.Popen[bytes] | None, int]:
    """The private redis-server (unless --redis-url) and the pid of the one used."""
    redis_proc = None
    if args.redis_url == "private":
        from tests.ports import free_port

        redis_port = free_port()
        redis_proc = start_private_redis(redis_port)
        args.redis_url = f"redis://127.0.0.1:{redis_port}/0"
    deadline = time.monotonic() + 10
    while True:
        probe = Redis.from_url(args.redis_url)
        try:
            return redis_proc, int((await probe.info("server"))["process_id"])
        except (OSError, RedisConnectionError):
            if time.monotonic() > deadline:
                if redis_proc is not None:
                    stop_process(redis_proc)
                raise
            await asyncio.sleep(0.05)
        finally:
            await probe.aclose()


def start_server(args: argparse.Namespace, port: int, ping_rate: float) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ZENDO_PORT": str(port),
        "ZENDO_DATABASE_URL": args.database_url,
        "ZENDO_REDIS_URL": args.redis_url,
        "ZENDO_JWT_SECRET": SECRET,
        "ZENDO_STATE_DIR": "/tmp/zendo-bench-cost",
        "ZENDO_BCRYPT_ROUNDS": str(BCRYPT_ROUNDS),
        "ZENDO_LOGIN_ATTEMPTS_PER_MIN": "1000000",  # every login comes from 127.0.0.1
        # The abuse limits (CONTRACT §8a) would refuse a load test's traffic.
        "ZENDO_REGISTRATIONS_PER_MIN": "1000000",
        "ZENDO_MAX_OPEN_JOBS_PER_CLIENT": "1000000",
        "ZENDO_JOBS_PER_MIN_PER_CLIENT": "1000000",
        "ZENDO_OFFER_TIMEOUT_S": "600",  # no offer expires between two windows
        "ZENDO_PING_RATE_PER_S": str(ping_rate),
        # The cost of a job is measured on jobs done: the driver keeps the cores busy, and
        # new jobs refused for CPU headroom (zendo/headroom.py) would be cheap errors.
        "ZENDO_CPU_BUSY_LIMIT": "0",
    }
    workers = [] if args.server_workers is None else ["--workers", str(args.server_workers)]
    return subprocess.Popen(
        [sys.executable, "-m", "zendo.cli", "serve", "--port", str(port), *workers],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open("/tmp/zendo-bench-cost-server.log", "wb"),
        preexec_fn=_in_child,
    )


def start_module(module: str, *argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", module, *argv],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=open(f"/tmp/zendo-bench-cost-{module.rsplit('.', 1)[1]}.log", "wb"),
        preexec_fn=_in_child,
    )


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
