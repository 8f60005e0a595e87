"""Docker cannot run here, so check the Dockerfile and compose file name only real things."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_parses_and_wires_real_services() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"api", "db", "redis"}
    assert services["db"]["image"].startswith("postgis/postgis:")
    assert services["redis"]["image"].startswith("redis:")
    assert services["api"]["build"] == "."
    for dep in services["api"]["depends_on"]:
        assert dep in services
    env = services["api"]["environment"]
    assert "@db:5432/" in env["ZENDO_DATABASE_URL"]
    assert env["ZENDO_REDIS_URL"].startswith("redis://redis:6379")
    for volume in services["db"].get("volumes", []):
        assert volume.split(":")[0] in compose["volumes"]


def test_dockerfile_copies_only_existing_paths_and_runs_the_console_script() -> None:
    text = (ROOT / "Dockerfile").read_text()
    for line in text.splitlines():
        if line.startswith("COPY") and "--from" not in line:
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), src
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["zendo"] == "zendo.cli:main"
    assert re.search(r"zendo migrate && exec zendo serve", text)
    assert "EXPOSE 8080" in text


def test_the_image_compiles_the_kernels_as_the_user_that_serves() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    warmup = lines.index("RUN zendo warmup")
    assert (
        lines.index("USER zendo")
        < warmup
        < next(i for i, line in enumerate(lines) if line.startswith("CMD"))
    )


def test_zendo_warmup_needs_no_settings() -> None:
    """`make setup` and the pool's supervisor run it before any configuration is read."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENDO_", "NUMBA_"))}
    env["ZENDO_PORT"] = "not-a-port"  # `zendo serve` would exit 2 on it
    done = subprocess.run(
        [sys.executable, "-m", "zendo.cli", "warmup"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert list((ROOT / "matching" / "__pycache__").glob("*.nbi")), "numba cached nothing"
