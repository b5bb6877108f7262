"""Redis idempotency records: atomic claim, stored response replay, request fingerprint.

Semantics follow the IETF Idempotency-Key draft and Stripe (see DESIGN.md, Idempotency):
the first request with a key claims it, the final response is stored with a fingerprint of
the request body, a retry with the same body gets the stored response, a retry with another
body is a mismatch (422) and a retry while the first is still running is in flight (409).

Every operation is ONE Redis round trip (EVALSHA of a Lua script registered once); this is
a performance contract the tests count.

Record layout, one Redis string per (merchant, key) so Lua does a single GET:
  in flight: ``F<fp>\\n``                               TTL lock_seconds (a lease)
  done:      ``D<fp>\\n<status>\\n<headers JSON>\\n<body>`` TTL ttl_seconds
The fingerprint is visible ASCII and the headers JSON is compact (JSON escapes control
characters inside strings), so neither holds a newline; the body is the raw, binary-safe
tail.

Keys are ``{prefix}:idem:{<merchant_id>}:<sha256(key) hex>``: the braces are a Redis
Cluster hash tag keeping a merchant's records on one slot, and the merchant's key is hashed
because it is arbitrary client text.

The in-flight record is a short lease: the request that holds it renews it (:meth:`renew`,
one round trip every third of the lease) while it runs, so a request whose process died
frees its key within lock_seconds. A retry may then claim it again; the database's unique
(merchant, idempotency key) constraint is what stops a second transfer in that case (and
the channel's own out_biz_no / out_bill_no dedupe behind it), not this module.

Redis errors surface as :class:`IdempotencyUnavailable`: a money-moving request never
proceeds without its claim.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

import orjson
import redis.asyncio
import redis.exceptions
from redis.crc import key_slot

from paymux.store.access_gate import GCRA_LUA, Admission, GateRequest

logger = logging.getLogger(__name__)

MAX_KEY_LENGTH = 255
MAX_FINGERPRINT_LENGTH = 128

_DONE = b"D"
# RFC 5234 VCHAR: printable ASCII without space, so never a newline in a record.
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")

# Returns 0 claimed, 1 in flight, 2 mismatch, or the whole done record (replay).
_CLAIM_LUA = """
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], 'F' .. ARGV[1] .. '\\n', 'PX', ARGV[2])
  return 0
end
if string.sub(v, 2, #ARGV[1] + 2) ~= ARGV[1] .. '\\n' then
  return 2
end
if string.sub(v, 1, 1) == 'F' then
  return 1
end
return v
"""

# The claim with the key's admission folded in (one round trip for authentication, rate
# limit and claim). KEYS: version, rate, last use (of the API key), record. ARGV: the version
# the caller's key cache holds, interval ms, burst, fp, lease ms. Returns {kind, version,
# allowed, remaining, retry ms, reset ms[, record]}: 'stale' when the key changed (the
# caller re-authenticates; nothing done), 'replay' (not charged), 'limited' (nothing
# claimed), else claimed / in_flight / mismatch, each charged one request.
_CLAIM_GATED_LUA = (
    GCRA_LUA
    + """
local ver = redis.call('GET', KEYS[1]) or '0'
if ver ~= ARGV[1] then return {'stale', ver, 0, 0, 0, 0} end
redis.call('SET', KEYS[3], t[1], 'EX', 7776000)
local interval, burst = tonumber(ARGV[2]), tonumber(ARGV[3])
local v = redis.call('GET', KEYS[4])
local same = v and string.sub(v, 2, #ARGV[4] + 2) == ARGV[4] .. '\\n'
if same and string.sub(v, 1, 1) == 'D' then
  local a, r, ra, rs = gcra(KEYS[2], interval, burst, 0)
  return {'replay', ver, a, r, ra, rs, v}
end
local a, r, ra, rs = gcra(KEYS[2], interval, burst, 1)
if a == 0 then return {'limited', ver, a, r, ra, rs} end
if not v then
  redis.call('SET', KEYS[4], 'F' .. ARGV[4] .. '\\n', 'PX', ARGV[5])
  return {'claimed', ver, a, r, ra, rs}
end
if not same then return {'mismatch', ver, a, r, ra, rs} end
return {'in_flight', ver, a, r, ra, rs}
"""
)

# Replaces our in-flight record (same fingerprint) with the done record; 1 if stored.
_COMPLETE_LUA = """
if redis.call('GET', KEYS[1]) == 'F' .. ARGV[1] .. '\\n' then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"""

# Extends our in-flight lease (same fingerprint); 1 if it was still ours.
_RENEW_LUA = """
if redis.call('GET', KEYS[1]) == 'F' .. ARGV[1] .. '\\n' then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# Deletes our in-flight record (same fingerprint); 1 if deleted.
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == 'F' .. ARGV[1] .. '\\n' then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class IdempotencyUnavailable(Exception):
    """Redis could not be reached or did not answer in time."""


class InvalidIdempotencyKey(ValueError):
    """The Idempotency-Key header is missing or not 1..255 visible ASCII characters."""


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class ClaimKind(StrEnum):
    claimed = "claimed"  # the caller owns the key: do the work, then complete or release
    replay = "replay"  # same body, already done: answer with Claim.response
    in_flight = "in_flight"  # same body, still running: 409
    mismatch = "mismatch"  # different body under this key: 422
    # Only with a gate (see :meth:`IdempotencyStore.claim`):
    stale = "stale"  # the API key changed since the caller cached it: nothing done
    limited = "limited"  # over the key's rate limit: nothing claimed
    # Upper-case aliases of the same members, for callers who prefer constant style.
    CLAIMED = "claimed"
    REPLAY = "replay"
    IN_FLIGHT = "in_flight"
    MISMATCH = "mismatch"


@dataclass(frozen=True)
class Claim:
    kind: ClaimKind
    response: StoredResponse | None = None
    admission: Admission | None = None  # with a gate: the key's admission


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot fingerprint a {type(value).__name__}")


def fingerprint(payload: Mapping[str, Any] | bytes) -> str:
    """SHA-256 hex of the canonical JSON of a request body (parsed mapping or raw bytes).

    Canonical = orjson with sorted keys, compact: key order and spacing do not change it.
    Numbers take JSON's double model (as RFC 8785 does): ``1.10`` and ``1.1`` are equal,
    integers are exact up to 64 bits. Bytes that are not JSON are hashed as they are, under
    a different domain prefix so the two kinds never collide.
    """
    if isinstance(payload, bytes | bytearray | memoryview):
        raw = bytes(payload)
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return hashlib.sha256(b"raw\x00" + raw).hexdigest()
        canonical = orjson.dumps(parsed, option=orjson.OPT_SORT_KEYS)
    else:
        data = payload if isinstance(payload, dict) else dict(payload)
        canonical = orjson.dumps(data, default=_json_default, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(b"json\x00" + canonical).hexdigest()


def _encode_done(fp: str, response: StoredResponse) -> bytes:
    headers = orjson.dumps(response.headers)
    return b"".join(
        (
            _DONE,
            fp.encode("ascii"),
            b"\n",
            str(int(response.status_code)).encode("ascii"),
            b"\n",
            headers,
            b"\n",
            bytes(response.body),
        )
    )


def _decode_done(record: bytes) -> StoredResponse:
    _fp, status, headers, body = record[1:].split(b"\n", 3)
    return StoredResponse(status_code=int(status), body=body, headers=orjson.loads(headers))


def _check_fingerprint(fp: str) -> None:
    if len(fp) > MAX_FINGERPRINT_LENGTH or not _VISIBLE_ASCII.fullmatch(fp):
        raise ValueError("fingerprint must be 1..128 visible ASCII characters")


class IdempotencyStore:
    """Idempotency records in Redis, one Lua round trip per operation.

    The client must return bytes (``decode_responses=False``, the default): bodies are
    binary.
    """

    def __init__(
        self,
        redis: redis.asyncio.Redis,
        *,
        ttl_seconds: int = 86400,
        lock_seconds: float = 5.0,
        prefix: str = "pmx",
    ) -> None:
        if ttl_seconds <= 0 or lock_seconds <= 0:
            raise ValueError("ttl_seconds and lock_seconds must be positive")
        pool_kwargs = getattr(getattr(redis, "connection_pool", None), "connection_kwargs", {})
        if pool_kwargs.get("decode_responses"):
            raise ValueError("IdempotencyStore needs a Redis client with decode_responses=False")
        self._redis = redis
        self._ttl = int(ttl_seconds)
        self._lock_ms = max(1, int(lock_seconds * 1000))
        self._prefix = prefix
        self._claim = redis.register_script(_CLAIM_LUA)
        self._complete = redis.register_script(_COMPLETE_LUA)
        self._release = redis.register_script(_RELEASE_LUA)
        self._renew = redis.register_script(_RENEW_LUA)
        self._claim_gated = redis.register_script(_CLAIM_GATED_LUA)

    @property
    def lock_seconds(self) -> float:
        return self._lock_ms / 1000

    @staticmethod
    def validate_key(key: str | None) -> str:
        """Return the Idempotency-Key if it is 1..255 visible ASCII chars, else raise."""
        if key is None:
            raise InvalidIdempotencyKey("Idempotency-Key header is required")
        if not 0 < len(key) <= MAX_KEY_LENGTH:
            raise InvalidIdempotencyKey(
                f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters long"
            )
        if not _VISIBLE_ASCII.fullmatch(key):
            raise InvalidIdempotencyKey(
                "Idempotency-Key must contain only visible ASCII characters (no spaces)"
            )
        return key

    def on_one_slot(self, merchant_id: str, keys: tuple[str, ...]) -> bool:
        """True when ``keys`` share the Cluster slot of ``merchant_id``'s records, so a
        script may touch them together."""
        slot = key_slot(self.record_key(merchant_id, "-").encode())
        return all(key_slot(k.encode()) == slot for k in keys)

    def record_key(self, merchant_id: str, key: str) -> str:
        """The Redis key holding the record of ``key`` for ``merchant_id``."""
        if not merchant_id or "{" in merchant_id or "}" in merchant_id:
            raise ValueError("merchant_id must be non-empty and hold no braces")
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return f"{self._prefix}:idem:{{{merchant_id}}}:{digest}"

    async def load_scripts(self) -> None:
        """Load the Lua scripts now, so even the first request is one round trip."""
        scripts = (self._claim, self._complete, self._release, self._renew, self._claim_gated)
        for script in scripts:
            script.sha = await self._redis.script_load(script.script)

    async def claim(
        self, merchant_id: str, key: str, fp: str, *, gate: GateRequest | None = None
    ) -> Claim:
        """Claim ``key``. With a ``gate`` the API key's revocation check and rate limit run
        in the same round trip (a replay is then not charged)."""
        _check_fingerprint(fp)
        if gate is not None:
            return await self._claim_with_gate(merchant_id, key, fp, gate)
        with _unavailable_on_redis_errors():
            result = await self._claim(
                keys=[self.record_key(merchant_id, key)], args=[fp, self._lock_ms]
            )
        if isinstance(result, bytes):
            return Claim(ClaimKind.replay, _decode_done(result))
        if result == 0:
            return Claim(ClaimKind.claimed)
        if result == 1:
            return Claim(ClaimKind.in_flight)
        if result == 2:
            return Claim(ClaimKind.mismatch)
        raise RuntimeError(f"unexpected idempotency claim result {result!r}")

    async def _claim_with_gate(
        self, merchant_id: str, key: str, fp: str, gate: GateRequest
    ) -> Claim:
        with _unavailable_on_redis_errors():
            answer = await self._claim_gated(
                keys=[*gate.keys, self.record_key(merchant_id, key)],
                args=[gate.expected_version, gate.interval_ms, gate.burst, fp, self._lock_ms],
            )
        kind = ClaimKind(answer[0].decode() if isinstance(answer[0], bytes) else answer[0])
        admission = gate.admission(*answer[1:6])
        response = _decode_done(answer[6]) if kind is ClaimKind.replay else None
        return Claim(kind, response, admission)

    async def complete(self, merchant_id: str, key: str, fp: str, response: StoredResponse) -> None:
        """Store the final response, if the in-flight record is still ours (same fp)."""
        _check_fingerprint(fp)
        record_key = self.record_key(merchant_id, key)
        with _unavailable_on_redis_errors():
            stored = await self._complete(
                keys=[record_key], args=[fp, _encode_done(fp, response), self._ttl]
            )
        if stored != 1:
            # The lock expired (and maybe another request claimed the key): the database
            # constraint guards the money; the replay is simply not available.
            logger.warning(
                "idempotency record %s was no longer ours; response not stored", record_key
            )

    async def release(self, merchant_id: str, key: str, fp: str) -> None:
        """Delete our in-flight record so the key can be reused (nothing was done)."""
        _check_fingerprint(fp)
        with _unavailable_on_redis_errors():
            await self._release(keys=[self.record_key(merchant_id, key)], args=[fp])

    async def renew(self, merchant_id: str, key: str, fp: str) -> bool:
        """Extend our in-flight lease by lock_seconds; False if it is no longer ours."""
        _check_fingerprint(fp)
        with _unavailable_on_redis_errors():
            renewed = await self._renew(
                keys=[self.record_key(merchant_id, key)], args=[fp, self._lock_ms]
            )
        return bool(renewed == 1)


@contextmanager
def _unavailable_on_redis_errors() -> Iterator[None]:
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        raise IdempotencyUnavailable(type(exc).__name__) from exc
