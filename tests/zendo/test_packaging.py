"""Docker cannot run here, so check the Dockerfile and compose file name only real things."""

from __future__ import annotations

import re
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
