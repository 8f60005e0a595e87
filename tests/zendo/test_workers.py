"""`zendo serve --workers N`: N processes on one port, each a node of its own.

The kernel spreads connections among the workers' SO_REUSEPORT listeners by a hash of
each connection's addresses, so the tests open sockets until they have one on each
worker (the user -> node registry in Redis says which), then show a frame crossing
from one worker to the other through Redis; and that the supervising process forwards
SIGTERM, starts a killed worker again, and that its workers stop when it is gone."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from core import redis_keys
from core.settings import SERVE_NICENESS, Settings
from gateway import tracking
from tests.factories import bearer
from tests.gateway.conftest import eventually, fix, new_artisan, new_user, now_ms, recv_type
from tests.gateway.processes import ROOT, stop, wait_healthy
from tests.ports import free_port
from zendo.admission import MAX_IN_FLIGHT

_STARTED = re.compile(r"zendo: worker (\d+) started \(pid (\d+)\)")
_SERVING = re.compile(r"zendo serving on http://[^:]+:(\d+) \(node (\w+), pid (\d+);")
_POOL = re.compile(r"zendo: \d+ workers on http://[^:]+:(\d+) ")
ATTEMPTS = 200  # sockets opened to find one on the other worker: 2**-200 odds to fail


@dataclass
class Pool:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def workers(self) -> dict[int, int]:
        """Worker slot -> pid of the last process started in it."""
        return {int(slot): int(pid) for slot, pid in _STARTED.findall(self.log())}

    def serving(self) -> dict[int, tuple[int, str]]:
        """pid -> (port, node id) of every worker that is serving."""
        return {int(pid): (int(port), node) for port, node, pid in _SERVING.findall(self.log())}


def _start(
    settings: Settings, log_path: Path, *args: str, extra_env: dict[str, str] | None = None
) -> Pool:
    env = {
        **os.environ,
        **(extra_env or {}),
        "ZENDO_HOST": "127.0.0.1",
        "ZENDO_DATABASE_URL": settings.database_url,
        "ZENDO_REDIS_URL": settings.redis_url,
        "ZENDO_JWT_SECRET": settings.jwt_secret,  # the tokens the tests mint are valid
        "ZENDO_CORS_ORIGINS": ",".join(settings.cors_origins),
        "ZENDO_BCRYPT_ROUNDS": "10",
        "ZENDO_PG_POOL_MIN": "2",  # several servers share the test database
        "ZENDO_STATE_DIR": str(settings.state_dir),
    }
    with log_path.open("wb") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "zendo.cli", "serve", *args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Pool(proc, log_path)


async def _until(check: Callable[[], object], what: str, within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.05)


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie is gone
    except FileNotFoundError:
        return True


@pytest.fixture
async def two_workers(
    settings: Settings, clean_state: None, tmp_path: Path
) -> AsyncIterator[tuple[int, Pool]]:
    port = free_port()
    pool = _start(settings, tmp_path / "pool.log", "--workers", "2", "--port", str(port))
    try:
        await wait_healthy(port)
        await _until(lambda: len(pool.serving()) == 2, "both workers serving")
        yield port, pool
    finally:
        stop(pool.proc)


async def _node_of(redis: Redis, user_id: uuid.UUID) -> str:
    """The one node holding the user's only socket, from the user -> node registry."""
    nodes = await eventually(lambda: redis.zrange(redis_keys.user_nodes(str(user_id)), 0, -1))
    assert len(nodes) == 1, nodes
    node: str = nodes[0]
    return node


async def test_two_workers_are_two_nodes_and_a_frame_crosses_between_them(
    two_workers: tuple[int, Pool], db: asyncpg.Connection, settings: Settings
) -> None:
    port, pool = two_workers
    url = f"http://127.0.0.1:{port}/ws"
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        async with aiohttp.ClientSession() as session:
            client_id, client_token = await new_user(db, settings)
            client = await session.ws_connect(url, headers=bearer(client_token))
            await recv_type(client, "hello")
            client_node = await _node_of(redis, client_id)

            # Artisans connect until one lands on the other worker; each is tracked by
            # the client from the start, as an assigned job's artisan is.
            intervention_id = uuid.uuid4()
            for _ in range(ATTEMPTS):
                artisan_id, artisan_token = await new_artisan(db, settings)
                await tracking.start_tracking(
                    redis,
                    artisan_id=artisan_id,
                    intervention_id=intervention_id,
                    client_id=client_id,
                    job_lat=48.87,
                    job_lon=2.35,
                )
                artisan = await session.ws_connect(url, headers=bearer(artisan_token))
                await recv_type(artisan, "hello")
                artisan_node = await _node_of(redis, artisan_id)
                if artisan_node != client_node:
                    break
                await artisan.close()
            else:
                raise AssertionError(f"{ATTEMPTS} sockets, all on node {client_node}")

            # The kernels were compiled (or loaded) once, before any worker started.
            log = pool.log()
            assert log.index("zendo: matching kernels ready") < log.index("worker 0 started")

            # Two nodes, two worker processes of the one pool.
            serving = pool.serving()
            nodes = {node: pid for pid, (_port, node) in serving.items()}
            assert {client_node, artisan_node} <= nodes.keys(), serving
            assert nodes[client_node] != nodes[artisan_node]
            assert {p for p, _node in serving.values()} == {port}

            # The artisan's worker accepts the fix; the client's worker sends the frame.
            ts = now_ms()
            await artisan.send_json(fix(48.86, 2.35, ts))
            frame = await recv_type(client, "artisan.location", within=10.0)
            assert frame["intervention_id"] == str(intervention_id)
            assert frame["ts"] == ts
            await artisan.close()
            await client.close()
    finally:
        await redis.aclose()

    # The supervisor and its workers yield the CPU to their neighbours (Settings.nice).
    pids = pool.workers().values()
    expected = max(SERVE_NICENESS, os.getpriority(os.PRIO_PROCESS, 0))
    assert [os.getpriority(os.PRIO_PROCESS, pid) for pid in (pool.proc.pid, *pids)] == [
        expected
    ] * 3

    # SIGTERM to the supervisor stops every worker, and it exits 0.
    pool.proc.send_signal(signal.SIGTERM)
    assert pool.proc.wait(timeout=20) == 0
    assert all(_gone(pid) for pid in pids)
    assert "zendo: stopping 2 workers (SIGTERM)" in pool.log()


def _samples(exposition: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name
    ]


def _metrics_dir(pid: int) -> Path:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    dirs = [v.split(b"=", 1)[1] for v in environ if v.startswith(b"PROMETHEUS_MULTIPROC_DIR=")]
    assert len(dirs) == 1, "the supervisor gives its workers a metrics directory"
    return Path(dirs[0].decode())


async def test_metrics_answer_for_the_whole_pool_whichever_worker_is_asked(
    two_workers: tuple[int, Pool],
) -> None:
    port, pool = two_workers
    base = f"http://127.0.0.1:{port}"
    asked = 40  # each on a connection of its own: the kernel spreads them over both workers
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        for _ in range(asked):
            assert (await http.get(f"{base}/specialties")).status == 200
        scrapes = [await (await http.get(f"{base}/metrics")).text() for _ in range(8)]

    # Both workers served some of them (each process's own file says so) ...
    metrics_dir = _metrics_dir(next(iter(pool.serving())))
    per_worker = {}
    for pid in pool.serving():
        files = [str(metrics_dir / f"counter_{pid}.db")]
        served = sum(
            sample.value
            for family in MultiProcessCollector.merge(files)  # type: ignore[no-untyped-call]
            for sample in family.samples
            if sample.name == "zendo_http_requests_total"
            and sample.labels["route"] == "/specialties"
        )
        per_worker[pid] = served
    assert sum(per_worker.values()) == asked
    assert all(served > 0 for served in per_worker.values()), per_worker
    # ... and every scrape, whichever worker answered it, counts all of them, once.
    for exposition in scrapes:
        samples = _samples(exposition, "zendo_http_requests_total")
        assert sum(v for labels, v in samples if labels["route"] == "/specialties") == asked
        # gauges combine as declared: limits add up, the policy is said once
        assert _samples(exposition, "zendo_workers") == [({}, 2.0)]
        assert _samples(exposition, "zendo_admission_limit") == [({}, 2.0 * MAX_IN_FLIGHT)]
        assert _samples(exposition, "zendo_dispatch_policy_info") == [
            ({"policy": "sequential"}, 1.0)
        ]

    stop(pool.proc)
    assert not metrics_dir.exists(), "the pool removes its metrics directory when it stops"


async def test_a_killed_worker_is_started_again_and_workers_stop_with_their_supervisor(
    settings: Settings, clean_state: None, tmp_path: Path
) -> None:
    pool = _start(settings, tmp_path / "pool.log", "--workers", "2", "--port", "0")
    try:
        # Port 0: the supervisor picks one free port, for both workers.
        await _until(lambda: _POOL.search(pool.log()), "the pool's port")
        match = _POOL.search(pool.log())
        assert match is not None
        port = int(match.group(1))
        assert port != 0
        await _until(lambda: len(pool.serving()) == 2, "both workers serving")
        assert {p for p, _node in pool.serving().values()} == {port}

        killed = pool.workers()[0]
        os.kill(killed, signal.SIGKILL)
        await _until(lambda: pool.workers()[0] != killed, "worker 0 started again")
        again = pool.workers()[0]
        await _until(lambda: again in pool.serving(), "the new worker 0 serving")
        assert f"worker 0 (pid {killed}) exited with -9" in pool.log()
        assert pool.serving()[again][1] != pool.serving()[killed][1]  # a node id of its own
        await wait_healthy(port)

        # The supervisor dies without a word: its workers see it and stop.
        workers = list(pool.workers().values())
        metrics_dir = _metrics_dir(workers[0])  # left behind by a SIGKILL: removed here
        pool.proc.send_signal(signal.SIGKILL)
        pool.proc.wait(timeout=10)
        await _until(lambda: all(_gone(pid) for pid in workers), "the workers stopped")
        assert pool.log().count("the supervising process is gone: stopping") == 2
        shutil.rmtree(metrics_dir)
    finally:
        stop(pool.proc)


async def test_a_failed_kernel_warm_up_is_said_and_the_workers_start_anyway(
    settings: Settings, clean_state: None, tmp_path: Path
) -> None:
    """`zendo warmup` fails (here: a sitecustomize that ends that one command with exit
    code 3): the supervisor says so and starts its workers, which load or compile the
    kernels themselves, later but serving."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import os, sys\nif sys.argv[1:2] == ['warmup']:\n    os._exit(3)\n"
    )
    path = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH", "")) if p)
    port = free_port()
    pool = _start(
        settings, tmp_path / "pool.log", "--workers", "2", "--port", str(port),
        extra_env={"PYTHONPATH": path},
    )  # fmt: skip
    try:
        await _until(lambda: len(pool.serving()) == 2, "both workers serving", within=90.0)
        await wait_healthy(port)
        log = pool.log()
        assert "zendo: the kernel warm-up exited 3: each worker compiles its own" in log
        assert "matching kernels ready" not in log
        assert log.index("exited 3") < log.index("worker 0 started")
    finally:
        stop(pool.proc)


async def test_a_port_in_use_is_refused_before_any_worker_starts(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    taken = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", port)
    try:
        pool = _start(settings, tmp_path / "pool.log", "--workers", "2", "--port", str(port))
        try:
            assert pool.proc.wait(timeout=30) == 1
        finally:
            stop(pool.proc)
    finally:
        taken.close()
        await taken.wait_closed()
    assert f"cannot listen on 127.0.0.1:{port}" in pool.log()
    assert "worker" not in pool.log()


def test_workers_must_be_at_least_one(capsys: pytest.CaptureFixture[str]) -> None:
    from zendo.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--workers", "0"])
    assert exit_info.value.code == 2
    assert "--workers: must be >= 1" in capsys.readouterr().err
