"""Builds a :class:`Gateway` from settings, and tears it down."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from paymux.channels.registry import load_channels
from paymux.domain.circuit import CircuitPolicy
from paymux.sealing import Kek, is_sealed_file, new_kek_entry, open_file_bytes, parse_keks
from paymux.service.circuits import ChannelCircuits
from paymux.service.feebook import FeeBook
from paymux.service.gateway import Gateway, utcnow
from paymux.settings import Settings
from paymux.store.data_keys_repo import load_data_keys
from paymux.store.db import Database, Timeouts
from paymux.store.idempotency import IdempotencyStore
from paymux.store.migrate import upgrade
from paymux.store.redis_client import CountingRedis

log = logging.getLogger(__name__)


def make_redis(url: str, settings: Settings) -> Redis:
    """The gateway's Redis client: every command bounded by the configured timeouts, and
    counted (store/redis_client.py)."""
    return CountingRedis.from_url(
        url,
        max_connections=512,
        socket_timeout=settings.redis_command_timeout_seconds,
        socket_connect_timeout=settings.redis_connect_timeout_seconds,
        # One immediate retry, and only when the connection broke before the command went
        # out (a pooled socket a Redis restart closed): the default (3 retries, backoff up
        # to 10 s) would hold a request far past its bound while Redis is down.
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )


async def build_gateway(settings: Settings, *, migrate: bool = True) -> Gateway:
    if not settings.redis_url:
        raise RuntimeError("PAYMUX_REDIS_URL is not set (`paymux serve` starts an embedded one)")
    timeouts = Timeouts(
        connect=settings.database_connect_timeout_seconds,
        statement=settings.database_statement_timeout_seconds,
        pool=settings.database_pool_timeout_seconds,
        idle_in_transaction=settings.database_idle_in_transaction_timeout_seconds,
    )
    db = Database(settings.database_url, pool_size=settings.database_pool_size, timeouts=timeouts)
    if migrate:
        await upgrade(db.engine)
    keks = resolve_keks(settings)
    await load_data_keys(db, keks, utcnow())
    redis = make_redis(settings.redis_url, settings)
    idem = IdempotencyStore(
        redis,
        ttl_seconds=settings.idempotency_ttl_seconds,
        lock_seconds=settings.idempotency_lock_seconds,
    )
    await idem.load_scripts()  # later calls are one EVALSHA round trip each
    channels = load_channels(unseal_key_files(settings.channel_settings, keks))
    feebook = FeeBook(db, settings.fee_config())
    await feebook.reload()
    log.info(
        "gateway ready: channels %s, database %s",
        sorted(channels),
        db.backend,
    )
    policy = CircuitPolicy(
        failure_threshold=settings.circuit_failure_threshold,
        open_seconds=settings.circuit_open_seconds,
    )
    return Gateway(
        settings=settings,
        db=db,
        redis=redis,
        idempotency=idem,
        channels=channels,
        feebook=feebook,
        circuits=ChannelCircuits(policy),
    )


# Open file descriptors of unsealed key files: they live as long as the process.
_MEMORY_FILES: list[int] = []


def unseal_key_files(
    channel_settings: dict[str, dict[str, Any]], keks: list[Kek]
) -> dict[str, dict[str, Any]]:
    """Channel settings with every sealed ``*_file`` (see `paymux keys seal-file`) replaced
    by an in-memory file holding its plaintext, so the key is never written to disk."""
    out: dict[str, dict[str, Any]] = {}
    for channel, values in channel_settings.items():
        out[channel] = dict(values)
        for name, value in values.items():
            if not name.endswith("_file") or not value:
                continue
            path = Path(str(value))
            if not path.is_file():
                continue
            data = path.read_bytes()
            if not is_sealed_file(data):
                continue
            fd = os.memfd_create(f"paymux-{channel}-{name}", os.MFD_CLOEXEC)
            os.write(fd, open_file_bytes(keks, data))
            _MEMORY_FILES.append(fd)
            out[channel][name] = f"/proc/self/fd/{fd}"
    return out


def resolve_keks(settings: Settings) -> list[Kek]:
    """The configured key-encryption keys; a local one is generated under data_dir on first
    start when none is configured (what `make run` relies on)."""
    if settings.kek is not None:
        return parse_keks(settings.kek.get_secret_value())
    path = settings.kek_file or settings.data_dir / "kek"
    if settings.kek_file is None and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".kek.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(new_kek_entry() + "\n")
        try:
            os.link(tmp, path)  # atomic, and fails if another worker got there first
            log.warning("generated a local key-encryption key in %s (keep it safe)", path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return parse_keks(path.read_text())


async def close_gateway(gw: Gateway) -> None:
    await gw.call_log.close(gw.db)
    for channel in gw.channels.values():
        await channel.aclose()
    await gw.redis.aclose()
    await gw.db.dispose()
