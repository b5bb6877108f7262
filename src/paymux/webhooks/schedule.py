"""Durable webhook delivery schedule in Redis: what is due when, and who is working on it.

Three keys share one hash tag (one cluster slot, so the Lua scripts may touch all of them):
- `{prefix}:wh:{sched}:due`      zset delivery_id -> unix time it is due
- `{prefix}:wh:{sched}:leased`   zset delivery_id -> unix time its lease runs out
- `{prefix}:wh:{sched}:attempt`  hash delivery_id -> attempt number it is due for

`claim_due` moves due items into `leased` in one Lua call, so two workers never receive the
same item. A worker that dies leaves its items leased; when the lease runs out they are
claimable again (crash safety: nothing is lost, at the price of a possible second attempt -
merchants dedupe on `webhook-id`). Leases carry no owner token, so `lease_seconds` must
comfortably exceed one attempt (the sender's timeout) or a slow worker and a new claimer may
both deliver the same attempt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

_ENQUEUE = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
return 1
"""

# Expired leases first (their worker is presumed dead), then due items; all move to
# `leased` with the new lease deadline. Returns a flat [id, attempt, id, attempt, ...].
_CLAIM = """
local limit = tonumber(ARGV[3])
local claimed = {}
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, limit)
for _, id in ipairs(expired) do
  redis.call('ZADD', KEYS[2], ARGV[2], id)
  claimed[#claimed + 1] = id
end
if #claimed < limit then
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, limit - #claimed)
  for _, id in ipairs(due) do
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[2], ARGV[2], id)
    claimed[#claimed + 1] = id
  end
end
local result = {}
for _, id in ipairs(claimed) do
  result[#result + 1] = id
  result[#result + 1] = redis.call('HGET', KEYS[3], id) or '1'
end
return result
"""


@dataclass(frozen=True)
class Delivery:
    delivery_id: str
    attempt: int


def _score(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError("schedule times must be finite unix seconds")
    return repr(float(value))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class DeliverySchedule:
    def __init__(
        self, redis: aioredis.Redis, *, prefix: str = "pmx", lease_seconds: int = 60
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self._redis = redis
        self._lease_seconds = lease_seconds
        base = f"{prefix}:wh:{{sched}}"
        self.due_key = f"{base}:due"
        self.leased_key = f"{base}:leased"
        self.attempt_key = f"{base}:attempt"
        self._keys = [self.due_key, self.leased_key, self.attempt_key]
        self._enqueue = redis.register_script(_ENQUEUE)
        self._claim = redis.register_script(_CLAIM)

    async def enqueue(self, delivery_id: str, *, due_at: float, attempt: int = 1) -> None:
        """Schedule a delivery; a no-op if it is already scheduled or leased (idempotent)."""
        _check_attempt(attempt)
        await self._enqueue(keys=self._keys, args=[delivery_id, _score(due_at), attempt])

    async def claim_due(self, *, now: float, limit: int = 100) -> list[Delivery]:
        """Lease up to `limit` items due at `now` (or whose lease ran out) to this caller."""
        if limit <= 0:
            return []
        lease_until = _score(now + self._lease_seconds)
        flat = await self._claim(keys=self._keys, args=[_score(now), lease_until, limit])
        return [
            Delivery(delivery_id=_text(flat[i]), attempt=int(_text(flat[i + 1])))
            for i in range(0, len(flat), 2)
        ]

    async def ack(self, delivery_id: str) -> None:
        """Delivered or given up: forget the item entirely."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.due_key, delivery_id)
            pipe.zrem(self.leased_key, delivery_id)
            pipe.hdel(self.attempt_key, delivery_id)
            await pipe.execute()

    async def retry(self, delivery_id: str, *, due_at: float, attempt: int) -> None:
        """Release the lease and schedule attempt number `attempt` at `due_at`."""
        _check_attempt(attempt)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.leased_key, delivery_id)
            pipe.zadd(self.due_key, {delivery_id: float(_score(due_at))})
            pipe.hset(self.attempt_key, delivery_id, str(attempt))
            await pipe.execute()

    async def pending_count(self) -> int:
        """Items not yet acked: due now or later, plus those currently leased."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zcard(self.due_key)
            pipe.zcard(self.leased_key)
            due, leased = await pipe.execute()
        return int(due) + int(leased)


def _check_attempt(attempt: int) -> None:
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
