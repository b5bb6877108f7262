"""IdempotencyStore against a real Redis: claim / replay / mismatch / in flight / release."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from decimal import Decimal

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

from paymux.store.access_gate import gate_request
from paymux.store.idempotency import (
    Claim,
    ClaimKind,
    IdempotencyStore,
    InvalidIdempotencyKey,
    StoredResponse,
    fingerprint,
)

MERCHANT = "mer_123"
FP_A = fingerprint({"amount": 100, "payee": "a@example.com"})
FP_B = fingerprint({"amount": 200, "payee": "a@example.com"})
# Every byte value, newlines and NULs included: the body must survive untouched.
BINARY_BODY = bytes(range(256)) + b"\n\n\r\n\x00tail"
RESPONSE = StoredResponse(
    status_code=201,
    body=BINARY_BODY,
    headers={"content-type": "application/json", "x-note": "支付\nline"},
)


def make_store(client: Redis, prefix: str, **kwargs: float) -> IdempotencyStore:
    return IdempotencyStore(client, prefix=prefix, **kwargs)


async def test_claim_complete_replay(redis_client: Redis, key_prefix: str) -> None:
    store = make_store(redis_client, key_prefix)
    assert await store.claim(MERCHANT, "k1", FP_A) == Claim(ClaimKind.claimed)
    await store.complete(MERCHANT, "k1", FP_A, RESPONSE)
    replay = await store.claim(MERCHANT, "k1", FP_A)
    assert replay.kind is ClaimKind.replay
    assert replay.response == RESPONSE
    # Replays do not consume the record.
    assert (await store.claim(MERCHANT, "k1", FP_A)).response == RESPONSE


async def test_empty_body_and_no_headers_round_trip(redis_client: Redis, key_prefix: str) -> None:
    store = make_store(redis_client, key_prefix)
    empty = StoredResponse(status_code=204, body=b"", headers={})
    await store.claim(MERCHANT, "k", FP_A)
    await store.complete(MERCHANT, "k", FP_A, empty)
    assert await store.claim(MERCHANT, "k", FP_A) == Claim(ClaimKind.replay, empty)


async def test_same_key_different_body_is_mismatch(redis_client: Redis, key_prefix: str) -> None:
    store = make_store(redis_client, key_prefix)
    await store.claim(MERCHANT, "k1", FP_A)
    assert await store.claim(MERCHANT, "k1", FP_B) == Claim(ClaimKind.mismatch)  # in flight
    await store.complete(MERCHANT, "k1", FP_A, RESPONSE)
    assert await store.claim(MERCHANT, "k1", FP_B) == Claim(ClaimKind.mismatch)  # done
    # A mismatch never hands out the other request's response.
    assert (await store.claim(MERCHANT, "k1", FP_B)).response is None


async def test_same_key_same_body_while_running_is_in_flight(
    redis_client: Redis, key_prefix: str
) -> None:
    store = make_store(redis_client, key_prefix)
    await store.claim(MERCHANT, "k1", FP_A)
    assert await store.claim(MERCHANT, "k1", FP_A) == Claim(ClaimKind.in_flight)


async def test_release_frees_the_key_for_reuse(redis_client: Redis, key_prefix: str) -> None:
    store = make_store(redis_client, key_prefix)
    await store.claim(MERCHANT, "k1", FP_A)
    await store.release(MERCHANT, "k1", FP_A)
    assert await redis_client.exists(store.record_key(MERCHANT, "k1")) == 0
    # Reusable, even with another body (the first one stored nothing).
    assert await store.claim(MERCHANT, "k1", FP_B) == Claim(ClaimKind.claimed)


async def test_release_only_deletes_our_in_flight_record(
    redis_client: Redis, key_prefix: str
) -> None:
    store = make_store(redis_client, key_prefix)
    await store.claim(MERCHANT, "k1", FP_A)
    await store.release(MERCHANT, "k1", FP_B)  # not ours
    assert await store.claim(MERCHANT, "k1", FP_A) == Claim(ClaimKind.in_flight)
    await store.complete(MERCHANT, "k1", FP_A, RESPONSE)
    await store.release(MERCHANT, "k1", FP_A)  # done records are never released
    assert (await store.claim(MERCHANT, "k1", FP_A)).kind is ClaimKind.replay


async def test_complete_only_if_record_is_still_ours(redis_client: Redis, key_prefix: str) -> None:
    store = make_store(redis_client, key_prefix)
    # No record at all (lock expired, nobody claimed): nothing is stored.
    await store.complete(MERCHANT, "gone", FP_A, RESPONSE)
    assert await redis_client.exists(store.record_key(MERCHANT, "gone")) == 0
    # Someone else's in-flight record: untouched.
    await store.claim(MERCHANT, "k1", FP_A)
    await store.complete(MERCHANT, "k1", FP_B, RESPONSE)
    assert await store.claim(MERCHANT, "k1", FP_A) == Claim(ClaimKind.in_flight)
    # A second complete does not overwrite the first stored response.
    await store.complete(MERCHANT, "k1", FP_A, RESPONSE)
    await store.complete(MERCHANT, "k1", FP_A, StoredResponse(500, b"other", {}))
    assert (await store.claim(MERCHANT, "k1", FP_A)).response == RESPONSE


async def test_in_flight_lock_expires_and_stale_complete_is_dropped(
    redis_client: Redis, key_prefix: str
) -> None:
    store = make_store(redis_client, key_prefix, lock_seconds=1, ttl_seconds=3600)
    record_key = store.record_key(MERCHANT, "k1")
    await store.claim(MERCHANT, "k1", FP_A)
    assert 0 < await redis_client.pttl(record_key) <= 1000
    await asyncio.sleep(1.15)
    # The crashed request's key is free again; a new request takes it.
    assert await store.claim(MERCHANT, "k1", FP_B) == Claim(ClaimKind.claimed)
    # The first request finishing late must not overwrite the new owner's record.
    await store.complete(MERCHANT, "k1", FP_A, RESPONSE)
    assert await store.claim(MERCHANT, "k1", FP_B) == Claim(ClaimKind.in_flight)
    # The completed record lives for ttl_seconds, not lock_seconds.
    await store.complete(MERCHANT, "k1", FP_B, RESPONSE)
    assert 3590 < await redis_client.ttl(record_key) <= 3600


async def test_records_are_scoped_per_merchant(redis_client: Redis, key_prefix: str) -> None:
    store = make_store(redis_client, key_prefix)
    await store.claim("mer_a", "shared-key", FP_A)
    await store.complete("mer_a", "shared-key", FP_A, RESPONSE)
    assert await store.claim("mer_b", "shared-key", FP_B) == Claim(ClaimKind.claimed)
    assert await store.claim("mer_b", "shared-key", FP_A) == Claim(ClaimKind.mismatch)
    assert (await store.claim("mer_a", "shared-key", FP_A)).kind is ClaimKind.replay


def test_record_key_is_hash_tagged_and_hashes_the_client_key() -> None:
    store = IdempotencyStore(Redis(), prefix="pmx")
    key = store.record_key("mer_123", "order:{42}/é")
    prefix, digest = key.rsplit(":", 1)
    assert prefix == "pmx:idem:{mer_123}"
    assert len(digest) == 64
    assert all(c in "0123456789abcdef" for c in digest)
    # All of a merchant's records share one Redis Cluster slot.
    assert key_slot(key.encode()) == key_slot(store.record_key("mer_123", "other").encode())
    assert store.record_key("mer_123", "a") != store.record_key("mer_123", "b")
    assert store.record_key("mer_1", "a") != store.record_key("mer_2", "a")
    for bad in ("", "mer_{1}", "mer}"):
        with pytest.raises(ValueError, match="merchant_id"):
            store.record_key(bad, "a")


@pytest.mark.parametrize(
    "key", ["a", "x" * 255, "550e8400-e29b-41d4-a716-446655440000", "!~{}:\"'"]
)
def test_validate_key_accepts_visible_ascii(key: str) -> None:
    assert IdempotencyStore.validate_key(key) == key


@pytest.mark.parametrize("key", [None, "", "x" * 256, "has space", "tab\t", "nl\n", "é", "\x7f"])
def test_validate_key_rejects(key: str | None) -> None:
    with pytest.raises(InvalidIdempotencyKey):
        IdempotencyStore.validate_key(key)
    assert issubclass(InvalidIdempotencyKey, ValueError)


def test_fingerprint_ignores_key_order_and_spacing() -> None:
    compact = b'{"amount":100,"payee":{"type":"alipay","id":"u1"},"tags":[1,2]}'
    spaced = b'{ "tags": [1, 2],\n  "payee": {"id": "u1", "type": "alipay"},  "amount" : 100 }'
    mapping = {"tags": [1, 2], "amount": 100, "payee": {"id": "u1", "type": "alipay"}}
    fp = fingerprint(compact)
    assert fp == fingerprint(spaced) == fingerprint(mapping)
    assert len(fp) == 64


def test_fingerprint_changes_with_content() -> None:
    base = fingerprint({"amount": 100, "tags": [1, 2]})
    assert fingerprint({"amount": 101, "tags": [1, 2]}) != base
    assert fingerprint({"amount": 100, "tags": [2, 1]}) != base  # list order matters
    assert fingerprint({"amount": "100", "tags": [1, 2]}) != base  # types matter
    assert fingerprint({"amount": 100, "tags": [1, 2], "x": None}) != base


def test_fingerprint_of_non_json_bytes_is_stable_and_distinct() -> None:
    raw = b"amount=100&payee=u1"
    assert fingerprint(raw) == fingerprint(raw)
    assert fingerprint(raw) != fingerprint(b"amount=101&payee=u1")
    # A JSON string body and the same text as raw bytes are different requests.
    assert fingerprint(b'"abc"') != fingerprint(b"abc")


def test_fingerprint_accepts_decimal_in_a_mapping() -> None:
    assert fingerprint({"rate": Decimal("0.006")}) == fingerprint({"rate": "0.006"})


async def test_store_rejects_bad_config_and_bad_fingerprints(
    redis_url: str, redis_client: Redis, key_prefix: str, sent: list[str]
) -> None:
    text_client = Redis.from_url(redis_url, decode_responses=True)
    try:
        with pytest.raises(ValueError, match="decode_responses"):
            IdempotencyStore(text_client)
    finally:
        await text_client.aclose()
    with pytest.raises(ValueError, match="positive"):
        IdempotencyStore(redis_client, lock_seconds=0)
    store = make_store(redis_client, key_prefix)
    for bad in ("", "two\nlines", "sp ace", "x" * 129):
        with pytest.raises(ValueError, match="fingerprint"):
            await store.claim(MERCHANT, "k", bad)
    assert sent == []  # rejected before any round trip


async def test_each_operation_is_exactly_one_round_trip(
    redis_client: Redis, key_prefix: str, sent: list[str]
) -> None:
    store = make_store(redis_client, key_prefix)
    await store.load_scripts()

    def assert_one_round_trip(label: str) -> None:
        assert sent == ["EVALSHA"], label
        sent.clear()

    sent.clear()
    assert (await store.claim(MERCHANT, "k1", FP_A)).kind is ClaimKind.claimed
    assert_one_round_trip("claim (claimed)")
    assert (await store.claim(MERCHANT, "k1", FP_A)).kind is ClaimKind.in_flight
    assert_one_round_trip("claim (in flight)")
    assert (await store.claim(MERCHANT, "k1", FP_B)).kind is ClaimKind.mismatch
    assert_one_round_trip("claim (mismatch)")
    await store.complete(MERCHANT, "k1", FP_A, RESPONSE)
    assert_one_round_trip("complete")
    assert (await store.claim(MERCHANT, "k1", FP_A)).kind is ClaimKind.replay
    assert_one_round_trip("claim (replay)")
    await store.claim(MERCHANT, "k2", FP_A)
    sent.clear()
    await store.release(MERCHANT, "k2", FP_A)
    assert_one_round_trip("release")


async def test_load_scripts_makes_a_fresh_store_one_round_trip(
    redis_client: Redis, key_prefix: str, sent: list[str]
) -> None:
    store = make_store(redis_client, key_prefix)
    await store.load_scripts()
    assert sent == ["SCRIPT LOAD"] * 5  # claim, complete, release, renew, gated claim
    sent.clear()
    await store.claim(MERCHANT, "first", FP_A)
    assert sent == ["EVALSHA"]


async def test_200_concurrent_claims_one_winner_then_all_replay(
    redis_client: Redis, key_prefix: str, sent: list[str]
) -> None:
    # Atomicity, not lease expiry: the lease must outlast 200 claims on a loaded machine
    # (with the 5 s default a claim after it ran out rightly wins again).
    store = make_store(redis_client, key_prefix, lock_seconds=120)
    await store.load_scripts()
    sent.clear()

    claims = await asyncio.gather(*(store.claim(MERCHANT, "race", FP_A) for _ in range(200)))
    kinds = Counter(c.kind for c in claims)
    assert kinds == {ClaimKind.claimed: 1, ClaimKind.in_flight: 199}
    assert sent == ["EVALSHA"] * 200  # one round trip each, even under contention

    await store.complete(MERCHANT, "race", FP_A, RESPONSE)
    replays = await asyncio.gather(*(store.claim(MERCHANT, "race", FP_A) for _ in range(200)))
    assert all(r.kind is ClaimKind.replay and r.response == RESPONSE for r in replays)


async def test_a_gated_claim_admits_the_key_in_the_same_round_trip(
    redis_client: Redis, key_prefix: str, sent: list[str]
) -> None:
    """Revocation check, rate limit and claim in one EVALSHA; a replay is not charged, a
    limited or stale request claims nothing."""
    store = make_store(redis_client, key_prefix)
    await store.load_scripts()
    gate = gate_request(MERCHANT, f"key_{uuid.uuid4().hex}", "0", per_second=1, burst=2)
    sent.clear()
    first = await store.claim(MERCHANT, "g1", FP_A, gate=gate)
    assert sent == ["EVALSHA"]
    assert first.kind is ClaimKind.claimed and first.admission is not None
    assert first.admission.allowed and first.admission.remaining == 1
    await store.complete(MERCHANT, "g1", FP_A, RESPONSE)
    sent.clear()
    replay = await store.claim(MERCHANT, "g1", FP_A, gate=gate)
    assert sent == ["EVALSHA"]
    assert replay.kind is ClaimKind.replay and replay.response == RESPONSE
    assert replay.admission is not None and replay.admission.remaining == 1  # not charged
    second = await store.claim(MERCHANT, "g2", FP_A, gate=gate)
    assert second.kind is ClaimKind.claimed and second.admission is not None
    assert second.admission.remaining == 0
    limited = await store.claim(MERCHANT, "g3", FP_A, gate=gate)
    assert limited.kind is ClaimKind.limited and limited.admission is not None
    assert not limited.admission.allowed and limited.admission.retry_after_ms > 0
    assert await redis_client.get(store.record_key(MERCHANT, "g3")) is None
    stale_gate = gate_request(MERCHANT, gate.keys[0].split(":")[-2], "7", 1, 2)
    stale = await store.claim(MERCHANT, "g4", FP_A, gate=stale_gate)
    assert stale.kind is ClaimKind.stale
    assert await redis_client.get(store.record_key(MERCHANT, "g4")) is None
    # Every key of the combined script is on the merchant's Cluster slot.
    slots = {key_slot(k.encode()) for k in [*gate.keys, store.record_key(MERCHANT, "g1")]}
    assert len(slots) == 1
