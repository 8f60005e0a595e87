from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.gateway_config import GatewayConfig
from core.settings import SERVE_CPU_BUSY_LIMIT, SERVE_NICENESS, Settings, SettingsError


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"ZENDO_STATE_DIR": str(tmp_path / ".zendo"), **extra}


def test_defaults_follow_the_contract(tmp_path: Path) -> None:
    s = Settings.from_env(_env(tmp_path))
    assert (s.host, s.port) == ("127.0.0.1", 8080)
    assert s.database_url == "postgresql:///zendo"
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.cors_origins == ("http://localhost:3000",)
    assert (s.bcrypt_rounds, s.offer_timeout_s, s.offer_batch) == (12, 20.0, 1)
    assert (s.match_radius_km, s.ping_rate_per_s, s.login_attempts_per_min) == (15.0, 2.0, 10)
    assert s.storage == "local"
    assert not s.payments_enabled


def test_dev_jwt_secret_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = Settings.from_env(_env(tmp_path)).jwt_secret
    second = Settings.from_env(_env(tmp_path)).jwt_secret
    assert first == second and len(first) >= 32
    assert (tmp_path / ".zendo" / "jwt_secret").stat().st_mode & 0o077 == 0


def test_secrets_are_masked_in_repr(tmp_path: Path) -> None:
    s = Settings.from_env(
        _env(
            tmp_path,
            ZENDO_JWT_SECRET="s" * 40,
            STRIPE_API_KEY="sk_test_secretvalue",
            STRIPE_WEBHOOK_SECRET="whsec_secretvalue",
            AWS_SECRET_ACCESS_KEY="awssecretvalue",
        )
    )
    text = repr(s) + str(s)
    for secret in ("s" * 40, "sk_test_secretvalue", "whsec_secretvalue", "awssecretvalue"):
        assert secret not in text
    assert "stripe_api_key='***'" in text
    assert s.payments_enabled


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ZENDO_BCRYPT_ROUNDS", "9"),
        ("ZENDO_BCRYPT_ROUNDS", "abc"),
        ("ZENDO_JWT_SECRET", "short"),
        ("ZENDO_OFFER_BATCH", "0"),
        ("ZENDO_MATCH_RADIUS_KM", "-1"),
        ("ZENDO_MATCH_RADIUS_KM", "inf"),
        ("ZENDO_STORAGE", "ftp"),
        ("ZENDO_PORT", "http"),
        ("ZENDO_PG_POOL_MAX", "1"),
        ("ZENDO_PG_POOL_MAX", "many"),
        ("ZENDO_PG_POOL_MIN", "0"),
        ("ZENDO_PG_POOL_MIN", "few"),
        ("ZENDO_STALL_TRACE_MS", "-5"),
        ("ZENDO_STALL_TRACE_MS", "soon"),
        ("ZENDO_GW_SEND_QUEUE_MAX", "lots"),
        ("ZENDO_GW_SEND_QUEUE_MAX", "1.5"),
        ("ZENDO_GW_HEARTBEAT_S", "-1"),
        ("ZENDO_GW_HEARTBEAT_S", "inf"),
        ("ZENDO_GW_HEARTBEAT_S", "0"),
        ("ZENDO_GW_SHUTDOWN_CLOSE_S", "-1"),
        ("ZENDO_NICE", "-1"),
        ("ZENDO_NICE", "20"),
        ("ZENDO_NICE", "low"),
        ("ZENDO_CPU_BUSY_LIMIT", "-0.1"),
        ("ZENDO_CPU_BUSY_LIMIT", "1.5"),
        ("ZENDO_CPU_BUSY_LIMIT", "busy"),
    ],
)
def test_invalid_values_are_refused(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(SettingsError):
        Settings.from_env(_env(tmp_path, **{name: value}))


def test_settings_are_frozen(tmp_path: Path) -> None:
    s = Settings.from_env(_env(tmp_path))
    with pytest.raises(AttributeError):
        s.port = 1  # type: ignore[misc]


def test_pool_size_is_read_from_the_environment(tmp_path: Path) -> None:
    assert Settings.from_env(_env(tmp_path)).pg_pool_max_size == 40
    assert Settings.from_env(_env(tmp_path, ZENDO_PG_POOL_MAX="7")).pg_pool_max_size == 7
    # `zendo serve` opens its whole pool at start-up unless told otherwise.
    assert Settings.from_env(_env(tmp_path, ZENDO_PG_POOL_MAX="7")).pg_pool_min_size == 7
    assert Settings.from_env(_env(tmp_path, ZENDO_PG_POOL_MIN="3")).pg_pool_min_size == 3
    assert Settings.from_env(_env(tmp_path, ZENDO_PG_POOL_MIN="99")).pg_pool_min_size == 40


def test_gateway_knobs_are_read_with_the_settings(tmp_path: Path) -> None:
    settings = Settings.from_env(
        _env(
            tmp_path,
            ZENDO_GW_SEND_QUEUE_MAX="64",
            ZENDO_GW_HEARTBEAT_S="7.5",
            ZENDO_GW_SHUTDOWN_CLOSE_S="1",
        )
    )
    assert settings.gateway.send_queue_max == 64
    assert settings.gateway.heartbeat_s == 7.5
    assert settings.gateway.shutdown_close_s == 1.0
    assert Settings.from_env(_env(tmp_path)).gateway.send_queue_max == 256


def test_other_gateway_knobs_are_constants_not_environment(tmp_path: Path) -> None:
    settings = Settings.from_env(
        _env(tmp_path, ZENDO_GW_LUA_CHUNK="5", ZENDO_GW_RECENT_FIX_S="1", ZENDO_GW_MAX_MSG_SIZE="x")
    )
    assert settings.gateway == GatewayConfig()


def test_one_recent_fix_value_for_the_gateway_and_the_lua_scripts() -> None:
    from gateway import live

    assert live.RECENT_FIX_MS == GatewayConfig().recent_fix_s * 1000


def test_a_bad_gateway_knob_stops_the_cli_with_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from zendo.cli import main

    for key, value in _env(tmp_path, ZENDO_GW_SEND_QUEUE_MAX="big").items():
        monkeypatch.setenv(key, value)
    assert main(["migrate"]) == 2
    assert "ZENDO_GW_SEND_QUEUE_MAX must be an integer, got 'big'" in capsys.readouterr().err


def test_workers_default_to_the_cores_and_are_read_from_the_environment(tmp_path: Path) -> None:
    assert Settings.from_env(_env(tmp_path)).workers == (os.cpu_count() or 1)
    assert Settings.from_env(_env(tmp_path, ZENDO_WORKERS="")).workers == (os.cpu_count() or 1)
    assert Settings.from_env(_env(tmp_path, ZENDO_WORKERS="3")).workers == 3


def test_the_server_yields_the_cpu_unless_told_otherwise(tmp_path: Path) -> None:
    assert Settings.from_env(_env(tmp_path)).nice == SERVE_NICENESS == 5
    assert Settings.from_env(_env(tmp_path, ZENDO_NICE="0")).nice == 0
    assert Settings.from_env(_env(tmp_path, ZENDO_NICE="19")).nice == 19
    assert Settings().nice == 0  # in-process (tests, tools): the caller's priority


def test_the_server_keeps_cpu_headroom_unless_told_otherwise(tmp_path: Path) -> None:
    assert Settings.from_env(_env(tmp_path)).cpu_busy_limit == SERVE_CPU_BUSY_LIMIT == 0.9
    assert Settings.from_env(_env(tmp_path, ZENDO_CPU_BUSY_LIMIT="0")).cpu_busy_limit == 0.0
    assert Settings.from_env(_env(tmp_path, ZENDO_CPU_BUSY_LIMIT="1")).cpu_busy_limit == 1.0
    assert Settings().cpu_busy_limit == 0.0  # in-process (tests, tools): never limited


@pytest.mark.parametrize("value", ["0", "-2", "many", "1.5"])
def test_a_bad_worker_count_stops_the_cli_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    from zendo.cli import main

    for key, val in _env(tmp_path, ZENDO_WORKERS=value).items():
        monkeypatch.setenv(key, val)
    assert main(["serve"]) == 2
    assert "configuration error: ZENDO_WORKERS must be" in capsys.readouterr().err


def test_the_postgresql_pool_shares_80_connections_among_the_workers(tmp_path: Path) -> None:
    def pool(**env: str) -> int:
        return Settings.from_env(_env(tmp_path, **env)).pg_pool_max_size

    assert pool(ZENDO_WORKERS="1") == 40
    assert pool(ZENDO_WORKERS="4") == 20
    assert pool(ZENDO_WORKERS="16") == 10
    assert pool(ZENDO_WORKERS="4", ZENDO_PG_POOL_MAX="33") == 33


def test_abuse_limits_follow_the_contract_and_are_read(tmp_path: Path) -> None:
    defaults = Settings.from_env(_env(tmp_path))
    assert (
        defaults.registrations_per_min,
        defaults.max_open_jobs_per_client,
        defaults.jobs_per_min_per_client,
        defaults.max_sockets_per_user,
        defaults.trusted_proxies,
    ) == (20, 3, 10, 3, ())
    s = Settings.from_env(
        _env(
            tmp_path,
            ZENDO_REGISTRATIONS_PER_MIN="5",
            ZENDO_MAX_OPEN_JOBS_PER_CLIENT="7",
            ZENDO_JOBS_PER_MIN_PER_CLIENT="30",
            ZENDO_MAX_SOCKETS_PER_USER="2",
            ZENDO_TRUSTED_PROXIES="10.0.0.0/8, 192.0.2.7,::1",
        )
    )
    assert (s.registrations_per_min, s.max_open_jobs_per_client) == (5, 7)
    assert (s.jobs_per_min_per_client, s.max_sockets_per_user) == (30, 2)
    assert [str(n) for n in s.trusted_proxies] == ["10.0.0.0/8", "192.0.2.7/32", "::1/128"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ZENDO_TRUSTED_PROXIES", "10.0.0.0/8,not-an-address"),
        ("ZENDO_MAX_SOCKETS_PER_USER", "0"),
        ("ZENDO_MAX_OPEN_JOBS_PER_CLIENT", "many"),
        ("ZENDO_REGISTRATIONS_PER_MIN", "0"),
    ],
)
def test_bad_abuse_limits_are_refused_naming_the_variable(
    tmp_path: Path, name: str, value: str
) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(_env(tmp_path, **{name: value}))
