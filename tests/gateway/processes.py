"""Helpers to run real gateway processes and a private redis-server in tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def start_server(
    settings: Settings, port: int, log_path: Path, **gw_env: str
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ZENDO_HOST": "127.0.0.1",
        "ZENDO_PORT": str(port),
        "ZENDO_DATABASE_URL": settings.database_url,
        "ZENDO_REDIS_URL": settings.redis_url,
        "ZENDO_JWT_SECRET": settings.jwt_secret,
        "ZENDO_CORS_ORIGINS": ",".join(settings.cors_origins),
        "ZENDO_BCRYPT_ROUNDS": "10",
        "ZENDO_PG_POOL_MIN": "2",  # several servers share the test database
        "ZENDO_STATE_DIR": str(settings.state_dir),
        "ZENDO_WORKERS": "1",  # each server here is one node: the tests start several
        **gw_env,
    }
    with log_path.open("wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "zendo.cli", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def wait_healthy(port: int, timeout_s: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"server on {port} did not start")
            await asyncio.sleep(0.1)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_redis(port: int, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def wait_redis(port: int, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            _r, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)
