"""A real Redis for the tests: PAYMUX_REDIS_URL if set, else a private embedded redis-server.

Tests never FLUSHDB (the operator's Redis may be shared): each test gets a fresh key prefix
and its keys are deleted afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def key_prefix(redis_client: Redis) -> AsyncIterator[str]:
    prefix = f"pmxtest-{uuid.uuid4().hex}"
    yield prefix
    keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await redis_client.delete(*keys)


@pytest.fixture
def sent(redis_client: Redis, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the commands redis_client sends from now on (one command = one round trip)."""
    names: list[str] = []
    send = redis_client.execute_command

    async def counting(*args: Any, **options: Any) -> Any:
        names.append(str(args[0]).upper())
        return await send(*args, **options)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(redis_client, "execute_command", counting)
    return names
