"""Real Redis for the webhook schedule tests: PAYMUX_REDIS_URL, or a throwaway redis-server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
import redis
import redis.asyncio as aioredis


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def webhook_redis_url() -> Iterator[str]:
    configured = os.environ.get("PAYMUX_REDIS_URL")
    if configured:
        yield configured
        return
    server = shutil.which("redis-server")
    assert server is not None, "redis-server is required when PAYMUX_REDIS_URL is not set"
    with tempfile.TemporaryDirectory(prefix="pmx-wh-redis-") as workdir:
        port = _free_port()
        proc = subprocess.Popen(
            [
                server,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                workdir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    redis.Redis.from_url(url, socket_timeout=1).ping()
                    break
                except redis.ConnectionError:
                    assert proc.poll() is None, "redis-server exited during start-up"
                    assert time.monotonic() < deadline, "redis-server did not start in 10 s"
                    time.sleep(0.05)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


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
