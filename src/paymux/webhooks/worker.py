"""Delivery worker: claims due deliveries from the schedule and makes one attempt each.

The database is the record (attempt rows, delivery status, attempt count); Redis only says
what is due. An attempt is recorded and its delivery updated in one transaction, and only
then is the schedule item acked or moved to its next attempt, so a crash at any point ends
in a second attempt at worst (the lease runs out), never in a lost delivery. Every attempt
of one event carries the event id as `webhook-id`, so merchants dedupe on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import Any

from paymux import metrics
from paymux.store import webhook_deliveries_repo as repo
from paymux.store.webhook_deliveries_repo import DeliveryWork
from paymux.webhooks import signing
from paymux.webhooks.relay import delivery_schedule
from paymux.webhooks.retry_policy import DEFAULT_SCHEDULE, next_delay, validate_schedule
from paymux.webhooks.runtime import DeliveryRuntime
from paymux.webhooks.schedule import Delivery, DeliverySchedule
from paymux.webhooks.sender import AttemptResult, WebhookSender

log = logging.getLogger(__name__)

DELIVERY_CONCURRENCY = 32
POLL_SECONDS = 0.2
SHUTDOWN_GRACE_SECONDS = 5.0
RETRY_JITTER = 0.1


def retry_schedule(gw: DeliveryRuntime) -> tuple[int, ...]:
    configured = gw.settings.webhook_retry_schedule
    return validate_schedule(configured) if configured is not None else DEFAULT_SCHEDULE


def make_sender(gw: DeliveryRuntime) -> WebhookSender:
    s = gw.settings
    return WebhookSender(
        timeout_seconds=s.webhook_timeout_seconds,
        allow_http=s.webhook_allow_http,
        allow_private=s.webhook_allow_private,
    )


async def _record(
    gw: DeliveryRuntime,
    work: DeliveryWork,
    result: AttemptResult,
    status: str,
    next_at: datetime | None,
) -> None:
    now = gw.clock()
    async with gw.db.write() as conn:
        await repo.record_attempt(
            conn,
            work,
            ok=result.ok,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            response_excerpt=result.response_excerpt,
            error=result.error,
            status=status,
            next_at=next_at,
            now=now,
        )


async def deliver_one(
    gw: DeliveryRuntime,
    schedule: DeliverySchedule,
    sender: WebhookSender,
    delivery_id: str,
    *,
    retries: tuple[int, ...],
) -> None:
    """One attempt of one delivery, recorded, then acked or rescheduled."""
    now = gw.clock()
    async with gw.db.read() as conn:
        work = await repo.load_work(conn, delivery_id, now)
    if work is None or work.status != "pending":
        # Finished already (a duplicate claim), or unknown to this database.
        await schedule.ack(delivery_id)
        return
    if not work.endpoint_live or not work.secrets:
        if work.endpoint_live:
            log.error("endpoint %s has no active signing secret", work.endpoint_id)
        async with gw.db.write() as conn:
            await repo.give_up(conn, delivery_id, now)
        await schedule.ack(delivery_id)
        return
    body = work.payload.encode()
    headers = signing.headers(work.secrets, work.event_id, int(now.timestamp()), body)
    result = await sender.send(work.url, headers, body)
    metrics.webhook_attempts.labels("true" if result.ok else "false").inc()
    attempt = work.attempts + 1
    delay = None if result.ok else next_delay(attempt, retries, jitter=RETRY_JITTER)
    finished = gw.clock()
    if result.ok:
        await _record(gw, work, result, "succeeded", None)
        await schedule.ack(delivery_id)
    elif delay is None:
        await _record(gw, work, result, "failed", None)
        await schedule.ack(delivery_id)
        log.warning(
            "delivery %s of %s to %s failed after %d attempts",
            delivery_id,
            work.event_id,
            work.endpoint_id,
            attempt,
        )
    else:
        next_at = finished + timedelta(seconds=delay)
        await _record(gw, work, result, "pending", next_at)
        await schedule.retry(delivery_id, due_at=next_at.timestamp(), attempt=attempt + 1)


async def run_delivery_worker(gw: DeliveryRuntime, stop: asyncio.Event) -> None:
    """Deliver until `stop`, at most DELIVERY_CONCURRENCY attempts at once."""
    schedule = delivery_schedule(gw)
    sender = make_sender(gw)
    retries = retry_schedule(gw)
    in_flight: set[asyncio.Task[None]] = set()

    async def guarded(delivery_id: str) -> None:
        try:
            await deliver_one(gw, schedule, sender, delivery_id, retries=retries)
        except Exception:
            # Left leased: the lease runs out and another attempt follows.
            log.exception("delivery %s failed unexpectedly; it will be retried", delivery_id)

    try:
        while not stop.is_set():
            free = DELIVERY_CONCURRENCY - len(in_flight)
            claimed: list[Delivery] = []
            if free > 0:
                try:
                    claimed = await schedule.claim_due(now=gw.clock().timestamp(), limit=free)
                except Exception:
                    log.exception("claiming due webhook deliveries failed")
            for item in claimed:
                task = asyncio.create_task(guarded(item.delivery_id))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            if claimed and len(claimed) == free:
                continue  # there may be more due right now
            # Sleep until stopped, the poll interval passes, or (when full) a slot frees.
            stopper = asyncio.ensure_future(stop.wait())
            waiters: set[asyncio.Future[Any]] = {stopper, *in_flight} if free <= 0 else {stopper}
            try:
                await asyncio.wait(
                    waiters, timeout=POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                stopper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stopper
    finally:
        try:
            if in_flight:
                # Let attempts under way finish and be recorded (within the app's shutdown
                # budget); an attempt cut short is retried when its lease runs out.
                await asyncio.wait(in_flight, timeout=SHUTDOWN_GRACE_SECONDS)
                for task in in_flight:
                    task.cancel()
        finally:
            await sender.aclose()
