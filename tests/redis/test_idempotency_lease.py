"""The in-flight record is a short lease: renewed while its request runs, free soon after
its process dies (docs/RELIABILITY.md, the retry contract)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from redis.asyncio import Redis

from paymux.api.idempotent import run_idempotent
from paymux.service.bootstrap import make_redis
from paymux.settings import Settings
from paymux.store.idempotency import (
    Claim,
    ClaimKind,
    IdempotencyStore,
    IdempotencyUnavailable,
    StoredResponse,
    fingerprint,
)

MERCHANT = "mer_lease"
FP_A = fingerprint({"amount": 1})
FP_B = fingerprint({"amount": 2})


async def test_renew_extends_only_our_in_flight_record(
    redis_client: Redis, key_prefix: str
) -> None:
    store = IdempotencyStore(redis_client, prefix=key_prefix, lock_seconds=1.0)
    record = store.record_key(MERCHANT, "k")
    assert await store.claim(MERCHANT, "k", FP_A) == Claim(ClaimKind.claimed)
    await redis_client.pexpire(record, 100)
    assert await store.renew(MERCHANT, "k", FP_A) is True
    assert 900 < await redis_client.pttl(record) <= 1000
    assert await store.renew(MERCHANT, "k", FP_B) is False  # not ours
    await store.complete(MERCHANT, "k", FP_A, StoredResponse(201, b"{}", {}))
    assert await store.renew(MERCHANT, "k", FP_A) is False  # done: nothing to renew
    assert await redis_client.ttl(record) > 3600  # the done record keeps its own TTL


async def test_a_request_running_past_its_lease_keeps_its_key(
    redis_client: Redis, key_prefix: str
) -> None:
    store = IdempotencyStore(redis_client, prefix=key_prefix, lock_seconds=0.6)
    gw: Any = SimpleNamespace(idempotency=store)
    started = asyncio.Event()
    finish = asyncio.Event()

    async def slow(fp: str) -> tuple[int, dict[str, Any], bool]:
        started.set()
        await finish.wait()
        return 201, {"id": "tr_1", "status": "succeeded"}, False

    task = asyncio.create_task(run_idempotent(gw, MERCHANT, "k", {"amount": 1}, slow))
    await started.wait()
    for _ in range(4):  # 4 x 0.5 s: more than three leases
        await asyncio.sleep(0.5)
        assert (await store.claim(MERCHANT, "k", FP_A)).kind is ClaimKind.in_flight
    finish.set()
    response = await task
    assert response.status_code == 201
    replay = await store.claim(MERCHANT, "k", FP_A)
    assert replay.kind is ClaimKind.replay


async def test_a_dead_requests_key_is_free_after_the_lease(
    redis_client: Redis, key_prefix: str
) -> None:
    """A process that claimed and died renews nothing: the key frees itself."""
    store = IdempotencyStore(redis_client, prefix=key_prefix, lock_seconds=0.5)
    assert (await store.claim(MERCHANT, "k", FP_A)).kind is ClaimKind.claimed
    assert 0 < await redis_client.pttl(store.record_key(MERCHANT, "k")) <= 500
    await asyncio.sleep(0.6)
    assert (await store.claim(MERCHANT, "k", FP_A)).kind is ClaimKind.claimed


def test_the_default_lease_frees_a_dead_requests_key_within_seconds() -> None:
    assert Settings().idempotency_lock_seconds <= 5


async def test_redis_errors_are_idempotency_unavailable() -> None:
    settings = Settings(redis_connect_timeout_seconds=0.3, redis_command_timeout_seconds=0.3)
    client = make_redis("redis://127.0.0.1:9", settings)  # discard port: refused
    store = IdempotencyStore(client)
    try:
        for call in (
            store.claim(MERCHANT, "k", FP_A),
            store.renew(MERCHANT, "k", FP_A),
            store.release(MERCHANT, "k", FP_A),
            store.complete(MERCHANT, "k", FP_A, StoredResponse(201, b"{}", {})),
        ):
            with pytest.raises(IdempotencyUnavailable):
                await call
    finally:
        await client.aclose()
