"""Schemathesis against the live app (issue 2, item 6).

`zendo serve` runs as a subprocess on a free port, on the test database and
Redis; schemathesis reads /openapi.json and sends bounded, seeded examples to
every operation, checking that nothing answers 5xx and that every response
conforms to the document (status code, content type, body schema).

It runs once per role so that the guarded routes are exercised past their
guards: a CLIENT registered through the API, and an ARTISAN and an ADMIN
created in the database.

`/ws` is excluded: it is a WebSocket upgrade, which schemathesis cannot speak;
the gateway's own tests cover it.

A 503 is the one 5xx tolerated, and only where an operation documents it
(`status_code_conformance` fails an undocumented one): it means "deliberately
unavailable", e.g. payments without `STRIPE_API_KEY` (this server runs without
one) or the artisan index still loading. A 500, or any other 5xx, fails the run.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from tests.conftest import TEST_DATABASE_URL, TEST_REDIS_URL
from tests.factories import create_user, token_for
from tests.ports import free_port

# The console script installed beside this interpreter (the project venv).
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
JWT_SECRET = "schemathesis-secret-" + "s" * 40
CLIENT_PASSWORD = "schemathesis-pw"
SERVER_START_TIMEOUT_S = 20.0
RUN_TIMEOUT_S = 150.0
# `--checks all`. Where a schema-valid request can still be refused for a reason no JSON
# Schema states, the operation lists that answer (positive_data_acceptance): a common
# password, a point outside the served polygons, a refresh token that may come in the
# body or the cookie (web), an upload that was not sent, a job in the wrong state; and
# the limits (429) and conflicts (409) the default list already allows.
_REFUSED_WHEN_VALID = {
    "/auth/register": "422",  # common password
    "/auth/refresh": "422",  # neither the body's token nor the cookie
    "/auth/logout": "422",
    "/interventions": "422",  # out_of_area
    "/artisan/documents/{document_id}/complete": "422",  # nothing uploaded
    "/interventions/{intervention_id}/photos/{photo_id}/complete": "422",
    "/webhooks/stripe": "400",  # a signature the schema cannot tell from a wrong one
}
SCHEMATHESIS_CONFIG = """
[checks.not_a_server_error]
expected-statuses = ["2xx", "3xx", "4xx", "503"]
""" + "".join(
    f"""
[[operations]]
include-path = "{path}"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "{status}", "429", "503"]
"""
    for path, status in _REFUSED_WHEN_VALID.items()
)


def _server_errors(log: Path, limit: int = 6000) -> str:
    """The server's logged tracebacks (not its access log), to explain a 5xx."""
    lines = [
        line for line in log.read_text(errors="replace").splitlines() if '"status":' not in line
    ]
    return "\n".join(lines)[-limit:]


async def _wait_healthy(base_url: str, proc: asyncio.subprocess.Process, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                break
            try:
                async with session.get(f"{base_url}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    pytest.fail(f"zendo serve did not become healthy:\n{_server_errors(log)}")


@pytest.fixture
async def live_server(clean_state: None, tmp_path: Path) -> AsyncIterator[str]:
    """Base URL of a `zendo serve` subprocess; its log is `tmp_path / "server.log"`."""
    port = free_port()
    env = {
        **os.environ,
        "ZENDO_HOST": "127.0.0.1",
        "ZENDO_PORT": str(port),
        "ZENDO_DATABASE_URL": TEST_DATABASE_URL,
        "ZENDO_REDIS_URL": TEST_REDIS_URL,
        "ZENDO_JWT_SECRET": JWT_SECRET,
        "ZENDO_BCRYPT_ROUNDS": "10",
        "ZENDO_PG_POOL_MIN": "2",  # several servers share the test database
        "ZENDO_BACKGROUND": "1",
        "ZENDO_STATE_DIR": str(tmp_path / ".zendo"),
        "ZENDO_OFFER_TIMEOUT_S": "2",
    }
    for name in ("STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET", "ZENDO_STORAGE"):
        env.pop(name, None)
    log = tmp_path / "server.log"
    with log.open("wb") as log_fh:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "zendo.cli",
            "serve",
            cwd=tmp_path,
            env=env,
            stdout=log_fh,
            stderr=asyncio.subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        await _wait_healthy(base_url, proc, log)
        yield base_url
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _token(base_url: str, role: str) -> str:
    if role == "CLIENT":
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{base_url}/auth/register",
                json={
                    "email": "schemathesis@example.com",
                    "password": CLIENT_PASSWORD,
                    "role": "CLIENT",
                },
            ) as resp,
        ):
            assert resp.status == 201, await resp.text()
            token: str = (await resp.json())["access_token"]
            return token
    conn = await asyncpg.connect(TEST_DATABASE_URL)
    try:
        user_id = await create_user(conn, role=role, lat=48.8566, lon=2.3522)
    finally:
        await conn.close()
    from core.settings import Settings

    # A long-lived token: the run must not outlive it.
    return token_for(Settings(jwt_secret=JWT_SECRET), user_id, role, ttl_s=3600)


@pytest.mark.slow
@pytest.mark.parametrize("role", ["CLIENT", "ARTISAN", "ADMIN"])
async def test_schemathesis_against_the_live_app(
    live_server: str, tmp_path: Path, role: str
) -> None:
    token = await _token(live_server, role)
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG)
    args = [
        str(SCHEMATHESIS),
        "--config-file",
        str(config),
        "run",
        f"{live_server}/openapi.json",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "15",
        "--seed",
        "20261125",
        "--workers",
        "2",
        "--request-timeout",
        "10",
        "--exclude-path",
        "/ws",
        "--generation-database",
        "none",
        "--no-color",
        "--header",
        f"Authorization: Bearer {token}",
    ]
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"schemathesis did not finish in {RUN_TIMEOUT_S} s")
    output = out.decode(errors="replace")
    print(output)  # shown by pytest -s, or with the failure
    server_log = await asyncio.to_thread((tmp_path / "server.log").read_text, errors="replace")
    # The access log holds paths only: never a token or a password.
    assert token not in server_log and CLIENT_PASSWORD not in server_log
    assert proc.returncode == 0, (
        f"{output}\n---- server log (errors) ----\n{_server_errors(tmp_path / 'server.log')}"
    )
