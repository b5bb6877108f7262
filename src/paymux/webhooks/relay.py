"""Outbox relay: turns committed events into webhook deliveries and schedules them.

One database transaction takes a batch of unrelayed events, writes one `webhook_deliveries`
row per subscribed endpoint and marks the events relayed; only after that commit are the
deliveries put into the Redis schedule. A crash between the commit and the enqueue leaves
`pending` rows nobody scheduled: the reconciliation pass (at start and every
RECONCILE_INTERVAL_SECONDS) enqueues overdue pending deliveries again. Enqueueing is a no-op
for an item already due or leased, so reconciling never doubles live work.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections.abc import Iterable, Sequence
from datetime import timedelta

from sqlalchemy import Connection
from sqlalchemy.engine import make_url

from paymux.store import webhook_deliveries_repo as repo
from paymux.webhooks.runtime import DeliveryRuntime
from paymux.webhooks.schedule import DeliverySchedule

log = logging.getLogger(__name__)

RELAY_BATCH_SIZE = 200
RECONCILE_INTERVAL_SECONDS = 30.0
# Longer than the gap between a commit and its enqueue; anything older was lost.
RECONCILE_GRACE_SECONDS = 15.0
RECONCILE_BATCH_SIZE = 500
WILDCARD = "*"


def schedule_prefix(database_url: str) -> str:
    """Redis key prefix of the schedule: one per system of record.

    Deployments (or test stacks) sharing one Redis must not claim each other's deliveries,
    while replicas of one deployment must share the schedule. The database identity is the
    thing that tells them apart; the password never enters the key.
    """
    identity = make_url(database_url).render_as_string(hide_password=True)
    return "pmx:" + hashlib.sha256(identity.encode()).hexdigest()[:12]


def lease_seconds(timeout_seconds: float) -> int:
    # A lease must outlast one attempt (the sender's timeout) plus its bookkeeping.
    return math.ceil(timeout_seconds * 2) + 5


def delivery_schedule(gw: DeliveryRuntime) -> DeliverySchedule:
    return DeliverySchedule(
        gw.redis,
        prefix=schedule_prefix(gw.settings.database_url),
        lease_seconds=lease_seconds(gw.settings.webhook_timeout_seconds),
    )


def subscribed(event_types: Sequence[str], event_type: str) -> bool:
    return WILDCARD in event_types or event_type in event_types


async def enqueue_now(schedule: DeliverySchedule, delivery_ids: Iterable[str]) -> None:
    due = time.time()
    for delivery_id in delivery_ids:
        await schedule.enqueue(delivery_id, due_at=due)


async def relay_once(
    gw: DeliveryRuntime, schedule: DeliverySchedule, *, batch_size: int = RELAY_BATCH_SIZE
) -> int:
    """Relay one batch; returns how many events it took (0 when the outbox is drained)."""
    now = gw.clock()

    def take(conn: Connection) -> tuple[int, list[str]]:
        batch = repo.take_unrelayed(conn, batch_size)
        if not batch:
            return 0, []
        endpoints = repo.live_endpoints(conn, {e["merchant_id"] for e in batch})
        rows = [
            repo.new_delivery(event["id"], endpoint_id, now)
            for event in batch
            for endpoint_id, types in endpoints.get(event["merchant_id"], [])
            if subscribed(types, event["type"])
        ]
        repo.insert_deliveries(conn, rows)
        repo.mark_relayed(conn, [e["id"] for e in batch], now)
        return len(batch), [r["id"] for r in rows]

    # One hop on the database's writer (see store/db.py), like the transfer transactions.
    taken, created = await gw.db.run_write(take)
    # After commit: a crash here is repaired by reconcile_once.
    await enqueue_now(schedule, created)
    return taken


async def reconcile_once(
    gw: DeliveryRuntime,
    schedule: DeliverySchedule,
    *,
    grace_seconds: float = RECONCILE_GRACE_SECONDS,
    batch_size: int = RECONCILE_BATCH_SIZE,
) -> int:
    """Enqueue pending deliveries overdue by more than the grace period; returns the count."""
    cutoff = gw.clock() - timedelta(seconds=grace_seconds)
    after = ""
    seen = 0
    while True:
        async with gw.db.read() as conn:
            rows = await repo.overdue_pending(conn, cutoff, after, batch_size)
        due = time.time()
        for delivery_id, attempts in rows:
            await schedule.enqueue(delivery_id, due_at=due, attempt=attempts + 1)
        seen += len(rows)
        if len(rows) < batch_size:
            return seen
        after = rows[-1][0]


async def run_relay(gw: DeliveryRuntime, stop: asyncio.Event) -> None:
    """Relay until `stop`: woken by committed events, or every relay interval."""
    schedule = delivery_schedule(gw)
    wakeup = gw.outbox.wakeup
    interval = gw.settings.webhook_relay_interval_seconds
    next_reconcile = 0.0  # first pass at start: repairs what a crash left behind
    while not stop.is_set():
        wakeup.clear()  # before relaying, so an event committed meanwhile wakes us again
        relayed = 0
        try:
            if time.monotonic() >= next_reconcile:
                found = await reconcile_once(gw, schedule)
                if found:
                    log.info("reconciliation re-enqueued %d overdue deliveries", found)
                next_reconcile = time.monotonic() + RECONCILE_INTERVAL_SECONDS
            relayed = await relay_once(gw, schedule)
        except Exception:
            log.exception("webhook relay pass failed; retrying")
        if relayed >= RELAY_BATCH_SIZE:
            continue  # a full batch: there may be more waiting
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wakeup.wait())]
        try:
            await asyncio.wait(waiters, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter
