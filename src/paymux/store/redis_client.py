"""The gateway's Redis client, counting the commands it sends for /internal/stats.

One command is one round trip (EVALSHA of an idempotency script is one command), so the
count is the benchmark's "Redis round trips per request". Counting is a subclass the
gateway chooses to build (service/bootstrap.py), not a patch of a live client.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis


class CountingRedis(Redis):
    round_trips: int = 0  # commands sent by this process through this client

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.round_trips += 1
        return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
