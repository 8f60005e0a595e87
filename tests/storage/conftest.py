"""Fixtures of the storage tests: moto's S3 server over real HTTP, a fresh bucket."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
from aiobotocore.session import get_session

from core.settings import Settings
from tests.ports import free_port


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
async def s3_settings(settings: Settings, moto_endpoint: str) -> Settings:
    """Settings for a fresh private bucket on the moto server."""
    s3 = settings.replace(
        storage="s3",
        s3_bucket=f"zendo-test-{uuid.uuid4().hex[:12]}",
        s3_endpoint=moto_endpoint,
        aws_region="us-east-1",
        aws_access_key_id="testing",
        aws_secret="testing",
    )
    async with get_session().create_client(
        "s3",
        region_name="us-east-1",
        endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ) as client:
        await client.create_bucket(Bucket=s3.s3_bucket)
    return s3
