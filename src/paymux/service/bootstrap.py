"""Builds a :class:`Gateway` from settings, and tears it down."""

from __future__ import annotations

import logging

from redis.asyncio import Redis

from paymux.channels.registry import load_channels
from paymux.idempotency import IdempotencyStore
from paymux.service.feebook import FeeBook
from paymux.service.gateway import Gateway
from paymux.settings import Settings
from paymux.store.db import Database
from paymux.store.migrate import upgrade

log = logging.getLogger(__name__)


async def build_gateway(settings: Settings, *, migrate: bool = True) -> Gateway:
    if not settings.redis_url:
        raise RuntimeError("PAYMUX_REDIS_URL is not set (`paymux serve` starts an embedded one)")
    db = Database(settings.database_url, pool_size=settings.database_pool_size)
    if migrate:
        await upgrade(db.engine)
    redis = Redis.from_url(
        settings.redis_url, max_connections=512, socket_timeout=5, socket_connect_timeout=5
    )
    idem = IdempotencyStore(
        redis,
        ttl_seconds=settings.idempotency_ttl_seconds,
        lock_seconds=settings.idempotency_lock_seconds,
    )
    await idem.load_scripts()  # later calls are one EVALSHA round trip each
    channels = load_channels(settings.channel_settings)
    feebook = FeeBook(db, settings.fee_config())
    await feebook.reload()
    log.info(
        "gateway ready: channels %s, database %s",
        sorted(channels),
        db.engine.url.get_backend_name(),
    )
    return Gateway(
        settings=settings, db=db, redis=redis, idempotency=idem, channels=channels, feebook=feebook
    )


async def close_gateway(gw: Gateway) -> None:
    for channel in gw.channels.values():
        await channel.aclose()
    await gw.redis.aclose()
    await gw.db.dispose()
