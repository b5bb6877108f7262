"""Settings from the environment (``PAYMUX_`` prefix) and the files under ``config/``."""

from __future__ import annotations

import tomllib
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PAYMUX_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Path("var")
    # SQLite file under var/ by default; postgresql+asyncpg://... is the production store.
    database_url: str = "sqlite+aiosqlite:///var/paymux.db"
    database_pool_size: int = 20
    # Unset: Paymux starts an embedded redis-server with persistence under var/redis.
    redis_url: str | None = None
    admin_key: SecretStr | None = None
    # Key-encryption key(s) for data at rest: `id:base64-32-bytes` entries, the first one
    # current (see docs/SECURITY.md). Unset: read from kek_file, default <data_dir>/kek,
    # which is generated on first start.
    kek: SecretStr | None = None
    kek_file: Path | None = None
    # Requests per second and burst per API key, unless a merchant has its own.
    rate_limit_per_second: int = 100
    rate_limit_burst: int = 200
    # Failed authentications allowed per client address and per key prefix per window.
    auth_failure_limit: int = 20
    auth_failure_window_seconds: int = 60
    # Longest time a worker trusts its cached key without Redis confirming its version.
    auth_cache_seconds: float = 60.0
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    # Base URL channels use to reach our callbacks (notify_url); defaults to host:port.
    public_url: str | None = None
    log_level: str = "info"
    auto_migrate: bool = True  # apply Alembic migrations at start-up

    channels_file: Path = Path("config/channels.toml")
    fees_file: Path = Path("config/fees.toml")
    # Per-channel settings, merged over channels_file: PAYMUX_CHANNELS__ALIPAY__APP_ID=...
    channels: dict[str, dict[str, Any]] = Field(default_factory=dict)
    enabled_channels: list[str] | None = None
    channel_preference: list[str] = Field(default_factory=lambda: ["alipay", "wechat"])
    # Hard bound on a channel call made inside a merchant's request.
    channel_call_timeout_seconds: float = 15.0

    idempotency_ttl_seconds: int = 86_400
    # The in-flight lock is a lease renewed (every third of it) while its request runs, so
    # the key of a request whose gateway died is free again within this many seconds.
    idempotency_lock_seconds: float = Field(default=5.0, gt=0.5)

    # Bounds on every dependency call (docs/RELIABILITY.md): an outage answers 503 quickly.
    database_connect_timeout_seconds: float = Field(default=3.0, gt=0)
    database_statement_timeout_seconds: float = Field(default=5.0, gt=0)
    database_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    # PostgreSQL ends a session idle inside a transaction this long (its client went silent:
    # a blackholed network, a dead peer), so its row locks cannot stall every replica.
    database_idle_in_transaction_timeout_seconds: float = Field(default=10.0, gt=0)
    redis_connect_timeout_seconds: float = Field(default=2.0, gt=0)
    redis_command_timeout_seconds: float = Field(default=2.0, gt=0)
    readiness_timeout_seconds: float = Field(default=2.0, gt=0)
    # Retry-After (seconds) sent with 503 (a dependency is down) and 409 (key in flight).
    retry_after_seconds: int = Field(default=1, ge=1)
    # Per-channel circuit breaker: consecutive failed calls (timeouts, refusals, unknown
    # outcomes from transport errors) that open it, and how long it stays open before a
    # probe is let through.
    circuit_failure_threshold: int = Field(default=5, ge=1)
    circuit_open_seconds: float = Field(default=10.0, gt=0)

    sync_enabled: bool = True
    sync_interval_seconds: float = 1.0
    sync_first_delay_seconds: float = 1.0
    sync_max_delay_seconds: float = 300.0
    sync_batch_size: int = 100
    sync_concurrency: int = 20
    # A pending transfer older than this is taken as orphaned by a crash and resent.
    pending_recovery_age_seconds: float = 60.0

    # Batch payouts: per-channel bounds on the background worker (real channels cap QPS).
    batch_enabled: bool = True
    batch_interval_seconds: float = 0.5  # while batches are in progress
    batch_idle_interval_seconds: float = 5.0  # when none are (batches of other replicas)
    batch_claim_seconds: float = 60.0
    batch_default_concurrency: int = 8
    batch_concurrency: dict[str, int] = Field(default_factory=dict)
    batch_default_rate_per_second: float = 50.0
    batch_rate_per_second: dict[str, float] = Field(default_factory=dict)

    business_timezone: str = "Asia/Shanghai"
    # Daily close (reconciliation of the previous business day + ledger digest), local time.
    reconciliation_enabled: bool = True
    reconciliation_time: str = "10:30"

    webhook_allow_http: bool = False
    webhook_allow_private: bool = False
    webhook_timeout_seconds: float = 10.0
    webhook_retry_schedule: list[int] | None = None
    webhook_secret_overlap_seconds: int = 86_400
    webhook_relay_interval_seconds: float = 0.5
    webhook_workers_enabled: bool = True

    @property
    def notify_base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @cached_property
    def channel_settings(self) -> dict[str, dict[str, Any]]:
        merged: dict[str, dict[str, Any]] = {}
        if self.channels_file.is_file():
            with self.channels_file.open("rb") as fh:
                merged = {k: dict(v) for k, v in tomllib.load(fh).items() if isinstance(v, dict)}
        for name, values in self.channels.items():
            merged.setdefault(name.lower(), {}).update({k.lower(): v for k, v in values.items()})
        if self.enabled_channels is not None:
            merged = {k: v for k, v in merged.items() if k in self.enabled_channels}
        return merged

    def fee_config(self) -> dict[str, Any]:
        if not self.fees_file.is_file():
            return {}
        with self.fees_file.open("rb") as fh:
            return tomllib.load(fh)
