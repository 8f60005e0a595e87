"""Frozen settings, read once from the environment (CONTRACT §0) and passed in."""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from core.gateway_config import GatewayConfig

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
DEFAULT_SERVICE_AREAS = Path(__file__).parent / "data" / "ile_de_france.geojson"
_SECRET_FIELDS = frozenset(
    {"jwt_secret", "stripe_api_key", "stripe_webhook_secret", "aws_secret", "metrics_token"}
)


# ZENDO_DISPATCH_POLICY's values (CONTRACT §9); dispatch/policies/ implements each one.
DISPATCH_POLICIES = ("sequential", "staggered", "best_accept", "batched", "fair")
# `zendo serve`'s niceness unless ZENDO_NICE says otherwise (Settings.nice); Linux's
# range ends at 19. At 5 a process weighs a third of one at 0 when the CPU is short.
SERVE_NICENESS = 5
MAX_NICENESS = 19
# `zendo serve`'s ZENDO_CPU_BUSY_LIMIT (Settings.cpu_busy_limit): new jobs are rate-limited
# past 90 % of the machine's cores (zendo/headroom.py; BENCHMARKS.md, twice the rate).
SERVE_CPU_BUSY_LIMIT = 0.9


class SettingsError(ValueError):
    """A configuration value is missing or invalid."""


def _gateway_config(env: dict[str, str]) -> GatewayConfig:
    """The gateway's operator settings: the heartbeat (below the idle timeout of any
    proxy or load balancer in front), the frames one socket may have waiting (memory per
    socket against slow mobile links) and the close-frame wait of a graceful shutdown
    (within the orchestrator's stop timeout)."""
    default = GatewayConfig()
    return GatewayConfig(
        heartbeat_s=_float(env, "ZENDO_GW_HEARTBEAT_S", default.heartbeat_s, minimum=1.0),
        send_queue_max=_int(env, "ZENDO_GW_SEND_QUEUE_MAX", default.send_queue_max, minimum=1),
        shutdown_close_s=_float(env, "ZENDO_GW_SHUTDOWN_CLOSE_S", default.shutdown_close_s),
    )


def _int(
    env: dict[str, str],
    name: str,
    default: int,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    raw = env.get(name)
    try:
        value = default if raw in (None, "") else int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name} must be <= {maximum}, got {value}")
    return value


def _float(env: dict[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name)
    try:
        value = default if raw in (None, "") else float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from exc
    if not value >= minimum or value == float("inf"):
        raise SettingsError(f"{name} must be a finite number >= {minimum}, got {value}")
    return value


def _share(env: dict[str, str], name: str, default: float) -> float:
    value = _float(env, name, default)
    if value > 1.0:
        raise SettingsError(f"{name} must be a share between 0 and 1, got {value}")
    return value


def _abuse_limits(env: dict[str, str]) -> dict[str, Any]:
    """CONTRACT §8a's limits, by their Settings field names."""
    proxies = []
    for raw in env.get("ZENDO_TRUSTED_PROXIES", "").split(","):
        if raw.strip():
            try:
                proxies.append(ipaddress.ip_network(raw.strip(), strict=False))
            except ValueError as exc:
                raise SettingsError(
                    f"ZENDO_TRUSTED_PROXIES holds {raw.strip()!r}, not an address or CIDR"
                ) from exc
    return {
        "registrations_per_min": _int(env, "ZENDO_REGISTRATIONS_PER_MIN", 20, minimum=1),
        "max_open_jobs_per_client": _int(env, "ZENDO_MAX_OPEN_JOBS_PER_CLIENT", 3, minimum=1),
        "jobs_per_min_per_client": _int(env, "ZENDO_JOBS_PER_MIN_PER_CLIENT", 10, minimum=1),
        "max_sockets_per_user": _int(env, "ZENDO_MAX_SOCKETS_PER_USER", 3, minimum=1),
        "trusted_proxies": tuple(proxies),
    }


def pool_default(workers: int) -> int:
    """PostgreSQL connections per process when ZENDO_PG_POOL_MAX is not set: 80 for the
    whole server, 10 to 40 per process (PostgreSQL's default max_connections is 100)."""
    return max(10, min(40, 80 // workers))


def _cores() -> int:
    return os.cpu_count() or 1


def _dev_jwt_secret(state_dir: Path) -> str:
    """In dev a random secret is generated once and kept, so tokens survive restarts."""
    path = state_dir / "jwt_secret"
    if path.exists():
        return path.read_text().strip()
    state_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret)
    return secret


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str = "postgresql:///zendo"
    redis_url: str = "redis://127.0.0.1:6379/0"
    jwt_secret: str = field(default="", repr=False)
    cors_origins: tuple[str, ...] = ("http://localhost:3000",)
    bcrypt_rounds: int = 12
    offer_timeout_s: float = 20.0
    offer_batch: int = 1
    match_radius_km: float = 15.0
    dispatch_policy: str = "sequential"
    ping_rate_per_s: float = 2.0
    login_attempts_per_min: int = 10
    service_areas_path: Path = DEFAULT_SERVICE_AREAS
    storage: str = "local"
    s3_bucket: str = ""
    s3_endpoint: str = ""
    aws_region: str = "eu-west-3"
    aws_access_key_id: str = ""
    aws_secret: str = field(default="", repr=False)
    stripe_api_key: str = field(default="", repr=False)
    stripe_webhook_secret: str = field(default="", repr=False)
    stripe_api_base: str = ""
    platform_fee_percent: float = 15.0
    public_base_url: str = "http://127.0.0.1:8080"
    state_dir: Path = Path(".zendo")
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 604800
    ws_auth_timeout_s: float = 5.0
    ws_offline_grace_s: float = 30.0
    # Each gateway process has its own id for the user -> node registry.
    node_id: str = field(default_factory=lambda: secrets.token_hex(6))
    # Processes `zendo serve` runs on one port (SO_REUSEPORT), each a node of its own.
    workers: int = field(default_factory=_cores)
    # The niceness `zendo serve` gives its processes (0-19; one that already runs nicer
    # keeps its own). The server is the one process on its machine that can shed load:
    # when the CPU is short, PostgreSQL, Redis and anything else sharing the cores run
    # first, the server's answers slow, and admission control turns the excess away
    # instead of everything slowing together (README, "Under load, and reconnecting").
    # With Linux's autogroups a niceness weighs only within a session, and each pool
    # worker leads its own (README, same section).
    nice: int = 0
    # The machine's busy share past which new jobs are rate-limited (zendo/headroom.py);
    # 0: never, as in-process (tests, tools); `zendo serve`: SERVE_CPU_BUSY_LIMIT.
    cpu_busy_limit: float = 0.0
    # Background tasks (dispatch loop, index mirror, write-behind) can be turned
    # off for processes that only serve HTTP, and for focused tests.
    run_background: bool = True
    # PostgreSQL connections per process. Under the locust mix (≈ 350 requests/s) 20
    # made accepts queue for a connection: median 17 ms server-side, 10 ms with 40.
    pg_pool_max_size: int = 40
    # Of those, opened at start-up and kept open however quiet it gets: a new PostgreSQL
    # backend costs milliseconds of CPU on both sides (fork, authentication, the type
    # introspection of asyncpg, first plans), which a burst after a deploy or a lull
    # would otherwise pay while its requests wait. `zendo serve` opens the whole pool;
    # the in-process default (tests, tools) opens connections as they are needed.
    pg_pool_min_size: int = 2
    # > 0: log the loop thread's stack when the event loop stalls this long (diagnostic).
    stall_trace_ms: float = 0.0
    # The gateway's knobs: three are read from ZENDO_GW_* (see _gateway_config), the
    # others keep their defaults unless a test passes a GatewayConfig in-process.
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    # --- sessions, live-state repair, /metrics (issue 18 part B) ---
    # A refresh token rotated less than this long ago is refused without revoking its
    # family: the loser of two concurrent refreshes, not a thief (CONTRACT §2).
    refresh_reuse_grace_s: float = 10.0
    # The reconciler's pass: live status and tracking that disagree with PostgreSQL's
    # active jobs are repaired within about this long.
    reconcile_interval_s: float = 3.0
    # ZENDO_METRICS_TOKEN: when set, /metrics needs `Authorization: Bearer <token>`.
    metrics_token: str = field(default="", repr=False)
    # PROMETHEUS_MULTIPROC_DIR: set by `zendo serve --workers N` for its workers, the
    # directory where the pool's processes share their metrics (core/metrics.py).
    metrics_dir: str = ""
    # Abuse limits (CONTRACT §8a): what one user or address may take from the others.
    registrations_per_min: int = 20
    max_open_jobs_per_client: int = 3
    jobs_per_min_per_client: int = 10
    max_sockets_per_user: int = 3
    # Peers whose X-Forwarded-For is believed (a reverse proxy, a load balancer).
    trusted_proxies: tuple[IPNetwork, ...] = ()

    @property
    def payments_enabled(self) -> bool:
        return bool(self.stripe_api_key)

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value: Any = getattr(self, f.name)
            if f.name in _SECRET_FIELDS:
                value = "***" if value else ""
            parts.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(parts)})"

    __str__ = __repr__

    def replace(self, **changes: Any) -> Settings:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        workers = _int(env, "ZENDO_WORKERS", _cores(), minimum=1)
        state_dir = Path(env.get("ZENDO_STATE_DIR", ".zendo"))
        jwt_secret = env.get("ZENDO_JWT_SECRET") or _dev_jwt_secret(state_dir)
        if len(jwt_secret.encode()) < 32:
            raise SettingsError("ZENDO_JWT_SECRET must be at least 32 bytes")
        storage = env.get("ZENDO_STORAGE", "local")
        if storage not in ("local", "s3"):
            raise SettingsError(f"ZENDO_STORAGE must be 'local' or 's3', got {storage!r}")
        if storage == "s3" and not env.get("ZENDO_S3_BUCKET"):
            raise SettingsError("ZENDO_S3_BUCKET is required when ZENDO_STORAGE=s3")
        bcrypt_rounds = _int(env, "ZENDO_BCRYPT_ROUNDS", 12)
        if not 10 <= bcrypt_rounds <= 31:
            raise SettingsError("ZENDO_BCRYPT_ROUNDS must be between 10 and 31")
        origins = tuple(
            o.strip().rstrip("/")
            for o in env.get("ZENDO_CORS_ORIGINS", "http://localhost:3000").split(",")
            if o.strip()
        )
        policy = env.get("ZENDO_DISPATCH_POLICY") or "sequential"
        if policy not in DISPATCH_POLICIES:
            raise SettingsError(
                f"ZENDO_DISPATCH_POLICY must be one of {', '.join(DISPATCH_POLICIES)}, got {policy!r}"
            )
        port = _int(env, "ZENDO_PORT", 8080, minimum=0)
        host = env.get("ZENDO_HOST", "127.0.0.1")
        pool_max = _int(env, "ZENDO_PG_POOL_MAX", pool_default(workers), minimum=2)
        return cls(
            host=host,
            port=port,
            database_url=env.get("ZENDO_DATABASE_URL", "postgresql:///zendo"),
            redis_url=env.get("ZENDO_REDIS_URL", "redis://127.0.0.1:6379/0"),
            jwt_secret=jwt_secret,
            cors_origins=origins,
            bcrypt_rounds=bcrypt_rounds,
            offer_timeout_s=_float(env, "ZENDO_OFFER_TIMEOUT_S", 20.0, minimum=0.1),
            offer_batch=_int(env, "ZENDO_OFFER_BATCH", 1, minimum=1),
            match_radius_km=_float(env, "ZENDO_MATCH_RADIUS_KM", 15.0, minimum=0.001),
            dispatch_policy=policy,
            ping_rate_per_s=_float(env, "ZENDO_PING_RATE_PER_S", 2.0, minimum=0.001),
            login_attempts_per_min=_int(env, "ZENDO_LOGIN_ATTEMPTS_PER_MIN", 10, minimum=1),
            service_areas_path=Path(env.get("ZENDO_SERVICE_AREAS") or DEFAULT_SERVICE_AREAS),
            storage=storage,
            s3_bucket=env.get("ZENDO_S3_BUCKET", ""),
            s3_endpoint=env.get("ZENDO_S3_ENDPOINT", ""),
            aws_region=env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or "eu-west-3",
            aws_access_key_id=env.get("AWS_ACCESS_KEY_ID", ""),
            aws_secret=env.get("AWS_SECRET_ACCESS_KEY", ""),
            stripe_api_key=env.get("STRIPE_API_KEY", ""),
            stripe_webhook_secret=env.get("STRIPE_WEBHOOK_SECRET", ""),
            stripe_api_base=env.get("ZENDO_STRIPE_API_BASE", ""),
            platform_fee_percent=_float(env, "ZENDO_PLATFORM_FEE_PERCENT", 15.0),
            public_base_url=env.get("ZENDO_PUBLIC_BASE_URL", f"http://{host}:{port}"),
            state_dir=state_dir,
            run_background=env.get("ZENDO_BACKGROUND", "1") != "0",
            stall_trace_ms=_float(env, "ZENDO_STALL_TRACE_MS", 0.0),
            pg_pool_max_size=pool_max,
            pg_pool_min_size=min(pool_max, _int(env, "ZENDO_PG_POOL_MIN", pool_max, minimum=1)),
            workers=workers,
            nice=_int(env, "ZENDO_NICE", SERVE_NICENESS, minimum=0, maximum=MAX_NICENESS),
            cpu_busy_limit=_share(env, "ZENDO_CPU_BUSY_LIMIT", SERVE_CPU_BUSY_LIMIT),
            gateway=_gateway_config(env),
            metrics_token=env.get("ZENDO_METRICS_TOKEN", ""),
            metrics_dir=env.get("PROMETHEUS_MULTIPROC_DIR", ""),
            **_abuse_limits(env),
        )
