"""The gateway's Redis client counts every command it sends (/internal/stats)."""

from __future__ import annotations

from paymux.store.redis_client import CountingRedis


async def test_each_command_counts_one_round_trip(redis_url: str) -> None:
    client = CountingRedis.from_url(redis_url)
    try:
        assert client.round_trips == 0
        await client.ping()
        await client.set("pmxtest:counting", b"1", ex=5)
        await client.get("pmxtest:counting")
        assert client.round_trips == 3
    finally:
        await client.aclose()
