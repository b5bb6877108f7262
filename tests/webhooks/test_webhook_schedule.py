"""Durable delivery schedule against a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import cast

import redis.asyncio as aioredis

from paymux.webhooks.schedule import Delivery, DeliverySchedule

T0 = 1_700_000_000.0


async def test_enqueue_claim_ack(webhook_redis: aioredis.Redis, webhook_redis_prefix: str) -> None:
    sched = DeliverySchedule(webhook_redis, prefix=webhook_redis_prefix, lease_seconds=60)
    await sched.enqueue("d-late", due_at=T0 + 100)
    await sched.enqueue("d-now", due_at=T0, attempt=3)
    assert await sched.pending_count() == 2

    assert await sched.claim_due(now=T0 - 1) == []
    assert await sched.claim_due(now=T0) == [Delivery("d-now", 3)]
    assert await sched.claim_due(now=T0) == []  # leased: nobody else gets it
    assert await sched.pending_count() == 2

    await sched.ack("d-now")
    assert await sched.pending_count() == 1
    assert await sched.claim_due(now=T0 + 100) == [Delivery("d-late", 1)]
    await sched.ack("d-late")
    assert await sched.pending_count() == 0
    # Ack really forgets the item: even after any lease would have expired, nothing returns.
    assert await sched.claim_due(now=T0 + 10_000) == []
    assert await cast("Awaitable[int]", webhook_redis.hlen(sched.attempt_key)) == 0


async def test_keys_are_hash_tagged(
    webhook_redis: aioredis.Redis, webhook_redis_prefix: str
) -> None:
    sched = DeliverySchedule(webhook_redis, prefix=webhook_redis_prefix)
    keys = [sched.due_key, sched.leased_key, sched.attempt_key]
    assert keys == [
        f"{webhook_redis_prefix}:wh:{{sched}}:due",
        f"{webhook_redis_prefix}:wh:{{sched}}:leased",
        f"{webhook_redis_prefix}:wh:{{sched}}:attempt",
    ]


async def test_claim_respects_limit_and_due_order(
    webhook_redis: aioredis.Redis, webhook_redis_prefix: str
) -> None:
    sched = DeliverySchedule(webhook_redis, prefix=webhook_redis_prefix)
    for i in range(10):
        await sched.enqueue(f"d{i}", due_at=T0 + 9 - i)
    first = await sched.claim_due(now=T0 + 100, limit=3)
    assert [d.delivery_id for d in first] == ["d9", "d8", "d7"]
    rest = await sched.claim_due(now=T0 + 100, limit=100)
    assert len(rest) == 7
    assert await sched.claim_due(now=T0 + 100, limit=0) == []


async def test_concurrent_claimers_never_share_an_item(
    webhook_redis: aioredis.Redis, webhook_redis_prefix: str
) -> None:
    sched = DeliverySchedule(webhook_redis, prefix=webhook_redis_prefix, lease_seconds=300)
    ids = [f"d{i:03d}" for i in range(500)]
    async with webhook_redis.pipeline(transaction=False) as pipe:
        for i, delivery_id in enumerate(ids):
            pipe.zadd(sched.due_key, {delivery_id: T0 + i % 7})
        await pipe.execute()
    # Workers on separate connections, all asking at once, in small batches.
    workers = [
        DeliverySchedule(
            aioredis.Redis(connection_pool=webhook_redis.connection_pool),
            prefix=webhook_redis_prefix,
            lease_seconds=300,
        )
        for _ in range(20)
    ]

    async def drain(worker: DeliverySchedule) -> list[str]:
        got: list[str] = []
        while batch := await worker.claim_due(now=T0 + 10, limit=7):
            got.extend(d.delivery_id for d in batch)
        return got

    results = await asyncio.gather(*(drain(w) for w in workers))
    claimed = [delivery_id for got in results for delivery_id in got]
    assert len(claimed) == len(set(claimed)) == 500
    assert set(claimed) == set(ids)
    assert sum(1 for got in results if got) > 1  # the claimers really competed
    assert await sched.pending_count() == 500  # all leased, none lost


async def test_unacked_lease_reappears_after_expiry(
    webhook_redis: aioredis.Redis, webhook_redis_prefix: str
) -> None:
    sched = DeliverySchedule(webhook_redis, prefix=webhook_redis_prefix, lease_seconds=60)
    await sched.enqueue("d1", due_at=T0, attempt=2)
    assert await sched.claim_due(now=T0) == [Delivery("d1", 2)]
    # The worker "dies": no ack, no retry.
    assert await sched.claim_due(now=T0 + 59) == []
    assert await sched.claim_due(now=T0 + 60) == [Delivery("d1", 2)]
    # The second claim renewed the lease from its own `now`.
    assert await sched.claim_due(now=T0 + 119) == []
    assert await sched.claim_due(now=T0 + 120) == [Delivery("d1", 2)]
    assert await sched.pending_count() == 1


async def test_retry_moves_lease_back_with_new_attempt(
    webhook_redis: aioredis.Redis, webhook_redis_prefix: str
) -> None:
    sched = DeliverySchedule(webhook_redis, prefix=webhook_redis_prefix, lease_seconds=60)
    await sched.enqueue("d1", due_at=T0)
    [claimed] = await sched.claim_due(now=T0)
    await sched.retry(claimed.delivery_id, due_at=T0 + 300, attempt=claimed.attempt + 1)
    assert await webhook_redis.zcard(sched.leased_key) == 0
    assert await sched.pending_count() == 1
    # Not due at the old lease expiry, due at the retry time, with the new attempt number.
    assert await sched.claim_due(now=T0 + 299) == []
    assert await sched.claim_due(now=T0 + 300) == [Delivery("d1", 2)]


async def test_enqueue_is_idempotent(
    webhook_redis: aioredis.Redis, webhook_redis_prefix: str
) -> None:
    sched = DeliverySchedule(webhook_redis, prefix=webhook_redis_prefix)
    await sched.enqueue("d1", due_at=T0)
    await sched.enqueue("d1", due_at=T0 + 500, attempt=4)
    assert await sched.pending_count() == 1
    assert await webhook_redis.zscore(sched.due_key, "d1") == T0  # first enqueue wins
    [claimed] = await sched.claim_due(now=T0)
    assert claimed == Delivery("d1", 1)
    # Re-enqueueing a leased item (e.g. an outbox relay replay) does not duplicate it either.
    await sched.enqueue("d1", due_at=T0)
    assert await sched.pending_count() == 1
    assert await sched.claim_due(now=T0 + 1) == []


async def test_fractional_times_keep_their_precision(
    webhook_redis: aioredis.Redis, webhook_redis_prefix: str
) -> None:
    sched = DeliverySchedule(webhook_redis, prefix=webhook_redis_prefix, lease_seconds=1)
    await sched.enqueue("d1", due_at=T0 + 0.25)
    assert await sched.claim_due(now=T0 + 0.24) == []
    assert await sched.claim_due(now=T0 + 0.25) == [Delivery("d1", 1)]
    assert await webhook_redis.zscore(sched.leased_key, "d1") == T0 + 1.25
