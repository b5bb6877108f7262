"""Real Redis for the webhook schedule tests (the suite's Redis, see tests/conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis


@pytest.fixture(scope="session")
def webhook_redis_url(redis_url: str) -> str:
    """The suite's Redis (tests/conftest.py): PAYMUX_REDIS_URL or an embedded one."""
    return redis_url


@pytest_asyncio.fixture(loop_scope="session")
async def webhook_redis(webhook_redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(webhook_redis_url, socket_timeout=5)
    try:
        yield client
    finally:
        await client.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def webhook_redis_prefix(webhook_redis: aioredis.Redis) -> AsyncIterator[str]:
    """A fresh key prefix per test, deleted afterwards (safe on a shared Redis)."""
    prefix = f"pmxtest-{uuid.uuid4().hex}"
    try:
        yield prefix
    finally:
        keys = [key async for key in webhook_redis.scan_iter(match=f"{prefix}:*")]
        if keys:
            await webhook_redis.delete(*keys)
