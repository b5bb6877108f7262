"""Redis side of authentication: key versions (revocation), per-key rate limits (GCRA) and
failed-authentication counters.

Every authenticated request costs ONE Redis round trip (:meth:`AccessGate.admit`): a Lua
script that reads the key's version (bumped on revoke, roll or any change, so every worker's
in-process key cache notices at once), records last use, and applies the key's rate limit.

The rate limit is GCRA (the generic cell rate algorithm, as in redis-cell and
go-redis/redis_rate): one stored number per key, the theoretical arrival time (TAT). A
request is allowed when ``TAT + interval - burst * interval <= now``; it then moves TAT on
by one interval. Time comes from the Redis server (``TIME``), so every worker agrees.
Replays of an idempotent request give their interval back (:meth:`refund`).

Keys: ``paymux:key:{<key id>}:ver|rl|used`` (one hash tag per API key, so the script's keys
share a Cluster slot); failure counters ``paymux:authfail:{auth}:ip:<addr>`` and
``…:prefix:<prefix>`` share one tag so their script stays single-slot.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

# Returns {version, allowed 0|1, remaining, retry_after_ms, reset_ms}.
_ADMIT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ver = redis.call('GET', KEYS[1]) or '0'
redis.call('SET', KEYS[3], t[1], 'EX', 7776000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local dvt = interval * burst
local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
if tat < now then tat = now end
if cost == 0 then
  return {ver, 1, math.floor((now + dvt - tat) / interval), 0, math.ceil(tat - now)}
end
local new_tat = tat + interval * cost
local allow_at = new_tat - dvt
if allow_at > now then
  return {ver, 0, 0, math.ceil(allow_at - now), math.ceil(tat - now)}
end
redis.call('SET', KEYS[2], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1)
return {ver, 1, math.floor((now + dvt - new_tat) / interval), 0, math.ceil(new_tat - now)}
"""

# Gives one interval back (a replayed idempotent request does not count).
_REFUND_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat <= now then return 0 end
local new_tat = math.max(now, tat - tonumber(ARGV[1]))
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1)
return 1
"""

# ARGV: limit, window seconds, record (1: count a failure, 0: only check).
# Returns the seconds to wait when over the limit, else 0.
_FAILURES_LUA = """
local worst = 0
for i = 1, #KEYS do
  local n
  if ARGV[3] == '1' then
    n = redis.call('INCR', KEYS[i])
    if n == 1 then redis.call('EXPIRE', KEYS[i], ARGV[2]) end
  else
    n = tonumber(redis.call('GET', KEYS[i]) or '0')
  end
  if n >= tonumber(ARGV[1]) then
    local ttl = redis.call('TTL', KEYS[i])
    if ttl < 1 then ttl = 1 end
    if ttl > worst then worst = ttl end
  end
end
return worst
"""

PREFIX = "paymux"


@dataclass(frozen=True)
class Admission:
    version: str
    allowed: bool
    limit: int  # the burst: requests allowed at once
    window_seconds: float  # time for a full burst to refill
    remaining: int
    retry_after_ms: int
    reset_ms: int  # until the bucket is full again


def _ver_key(key_id: str) -> str:
    return f"{PREFIX}:key:{{{key_id}}}:ver"


class AccessGate:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._admit = redis.register_script(_ADMIT_LUA)
        self._refund = redis.register_script(_REFUND_LUA)
        self._failures = redis.register_script(_FAILURES_LUA)

    async def load_scripts(self) -> None:
        for script in (self._admit, self._refund, self._failures):
            script.sha = await self._redis.script_load(script.script)

    async def admit(self, key_id: str, per_second: int, burst: int, *, cost: int = 1) -> Admission:
        tag = f"{PREFIX}:key:{{{key_id}}}"
        interval = 1000.0 / per_second
        ver, allowed, remaining, retry_ms, reset_ms = await self._admit(
            keys=[f"{tag}:ver", f"{tag}:rl", f"{tag}:used"], args=[interval, burst, cost]
        )
        return Admission(
            version=ver.decode() if isinstance(ver, bytes) else str(ver),
            allowed=bool(allowed),
            limit=burst,
            window_seconds=burst / per_second,
            remaining=max(0, int(remaining)),
            retry_after_ms=int(retry_ms),
            reset_ms=max(0, int(reset_ms)),
        )

    async def refund(self, key_id: str, per_second: int) -> None:
        await self._refund(keys=[f"{PREFIX}:key:{{{key_id}}}:rl"], args=[1000.0 / per_second])

    async def bump_version(self, key_id: str) -> None:
        """Every worker's cached copy of this key is stale from now on."""
        await self._redis.incr(_ver_key(key_id))

    async def last_used(self, key_ids: list[str]) -> dict[str, int]:
        """Unix seconds of each key's last authenticated request (one MGET)."""
        if not key_ids:
            return {}
        values = await self._redis.mget([f"{PREFIX}:key:{{{k}}}:used" for k in key_ids])
        return {k: int(v) for k, v in zip(key_ids, values, strict=True) if v is not None}

    def _failure_keys(self, client: str, prefix: str) -> list[str]:
        base = f"{PREFIX}:authfail:{{auth}}"
        return [f"{base}:ip:{client}", f"{base}:prefix:{prefix}"]

    async def failures_block(
        self, client: str, prefix: str, limit: int, window: int, *, record: bool
    ) -> int:
        """Seconds the client (or anyone using this key prefix) must wait, or 0."""
        wait = await self._failures(
            keys=self._failure_keys(client, prefix), args=[limit, window, 1 if record else 0]
        )
        return int(wait)
