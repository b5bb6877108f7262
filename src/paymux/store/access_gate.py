"""Redis side of authentication: key versions (revocation), per-key rate limits (GCRA) and
failed-authentication counters.

Every authenticated request costs ONE Redis round trip: either :meth:`AccessGate.admit`, a
Lua script that reads the key's version (bumped on revoke, roll or any change, so every
worker's in-process key cache notices at once), records last use and applies the key's rate
limit; or, on money-moving routes, the same work folded into the idempotency claim
(:class:`GateRequest`, see ``paymux.store.idempotency``), so a replay costs one round trip in all
and is not charged against the limit.

The rate limit is GCRA (the generic cell rate algorithm, as in redis-cell and
go-redis/redis_rate): one stored number per key, the theoretical arrival time (TAT). A
request is allowed when ``TAT + interval - burst * interval <= now``; it then moves TAT on
by one interval. Time comes from the Redis server (``TIME``), so every worker agrees.

Keys: ``paymux:key:{<owner>}:<key id>:ver|rl|used``; the hash tag is the key's owner (its
merchant id, or ``operators``), the same tag as that merchant's idempotency records, so a
combined claim stays on one Redis Cluster slot. Failure counters
``paymux:authfail:{auth}:ip:<addr>`` and ``…:prefix:<prefix>`` share one tag so their script
stays single-slot.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from redis.asyncio import Redis

# The GCRA step as a Lua function, shared by the admit script and the combined idempotency
# claim. ``gcra(rl_key, now, interval, burst, cost)`` returns allowed (0|1), remaining,
# retry-after ms and reset ms; cost 0 only reports.
GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function gcra(rl_key, interval, burst, cost)
  local dvt = interval * burst
  local tat = tonumber(redis.call('GET', rl_key) or '0')
  if tat < now then tat = now end
  if cost == 0 then
    return 1, math.floor((now + dvt - tat) / interval), 0, math.ceil(tat - now)
  end
  local new_tat = tat + interval * cost
  local allow_at = new_tat - dvt
  if allow_at > now then
    return 0, 0, math.ceil(allow_at - now), math.ceil(tat - now)
  end
  redis.call('SET', rl_key, string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1)
  return 1, math.floor((now + dvt - new_tat) / interval), 0, math.ceil(new_tat - now)
end
"""

# KEYS: ver, rl, used. ARGV: interval ms, burst, cost, a fresh random version (stored when
# the key has none: first use, or Redis lost its data). Returns {version, allowed 0|1,
# remaining, retry_after_ms, reset_ms}.
_ADMIT_LUA = (
    GCRA_LUA
    + """
local ver = redis.call('GET', KEYS[1])
if not ver then
  ver = ARGV[4]
  redis.call('SET', KEYS[1], ver, 'EX', 7776000)
end
redis.call('SET', KEYS[3], t[1], 'EX', 7776000)
local a, r, ra, rs = gcra(KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
return {ver, a, r, ra, rs}
"""
)

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
VERSION_TTL = 7_776_000  # 90 days: an expired version is only a cache miss


def new_version() -> str:
    """A key version no cache has seen: 64 random bits (never '0', which the combined
    idempotency claim reads for a key without a version: no cache holds it, so stale)."""
    return secrets.token_hex(8)


OPERATORS = "operators"  # the hash tag of operator keys


def owner_of(merchant_id: str | None) -> str:
    """The hash tag of a key's Redis records: its merchant, or the operators."""
    return merchant_id or OPERATORS


@dataclass(frozen=True)
class Admission:
    version: str
    allowed: bool
    limit: int  # the burst: requests allowed at once
    window_seconds: float  # time for a full burst to refill
    remaining: int
    retry_after_ms: int
    reset_ms: int  # until the bucket is full again


@dataclass(frozen=True)
class GateRequest:
    """What a script needs to admit a key on its own: its Redis keys (version, rate,
    last use), the version the caller's cache holds, and its limit."""

    keys: tuple[str, str, str]
    expected_version: str
    per_second: int
    burst: int

    @property
    def interval_ms(self) -> float:
        return 1000.0 / self.per_second

    def admission(
        self,
        version: object,
        allowed: object,
        remaining: object,
        retry_ms: object,
        reset_ms: object,
    ) -> Admission:
        """The script's answer as an :class:`Admission`."""
        return Admission(
            version=version.decode() if isinstance(version, bytes) else str(version),
            allowed=bool(int(str(allowed))),
            limit=self.burst,
            window_seconds=self.burst / self.per_second,
            remaining=max(0, int(str(remaining))),
            retry_after_ms=int(str(retry_ms)),
            reset_ms=max(0, int(str(reset_ms))),
        )


def _tag(owner: str, key_id: str) -> str:
    return f"{PREFIX}:key:{{{owner}}}:{key_id}"


def gate_request(
    owner: str, key_id: str, expected_version: str, per_second: int, burst: int
) -> GateRequest:
    tag = _tag(owner, key_id)
    return GateRequest(
        (f"{tag}:ver", f"{tag}:rl", f"{tag}:used"), expected_version, per_second, burst
    )


class AccessGate:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._admit = redis.register_script(_ADMIT_LUA)
        self._refund = redis.register_script(_REFUND_LUA)
        self._failures = redis.register_script(_FAILURES_LUA)

    async def load_scripts(self) -> None:
        for script in (self._admit, self._refund, self._failures):
            script.sha = await self._redis.script_load(script.script)

    async def admit(
        self, owner: str, key_id: str, per_second: int, burst: int, *, cost: int = 1
    ) -> Admission:
        req = gate_request(owner, key_id, "", per_second, burst)
        answer = await self._admit(
            keys=list(req.keys), args=[req.interval_ms, burst, cost, new_version()]
        )
        return req.admission(*answer)

    async def refund(self, owner: str, key_id: str, per_second: int) -> None:
        await self._refund(keys=[f"{_tag(owner, key_id)}:rl"], args=[1000.0 / per_second])

    async def bump_version(self, owner: str, key_id: str) -> None:
        """Every worker's cached copy of this key is stale from now on: a new random
        version, never one a cache could hold (a counter would restart after Redis lost
        its data and could reach a cached value again)."""
        await self._redis.set(f"{_tag(owner, key_id)}:ver", new_version(), ex=VERSION_TTL)

    async def last_used(self, keys: list[tuple[str, str]]) -> dict[str, int]:
        """Unix seconds of each (owner, key id)'s last authenticated request (one MGET;
        the keys may span slots, so on a Cluster the client splits it)."""
        if not keys:
            return {}
        values = await self._redis.mget([f"{_tag(o, k)}:used" for o, k in keys])
        return {k: int(v) for (_, k), v in zip(keys, values, strict=True) if v is not None}

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
