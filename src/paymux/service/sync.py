"""Resolves transfers whose outcome we did not see, and recovers ones a crash left pending.

``processing`` and ``requires_confirmation`` transfers are queried at their
``next_sync_at`` with exponential backoff (a payee may take hours to confirm).
``pending`` transfers older than the recovery age (all of them at start-up) were written but
perhaps never sent: they are sent again under the same channel reference, which the channel
dedupes. A ``pending`` transfer parked by an open channel circuit (``next_sync_at`` set when
it was written) is due at its ``next_sync_at`` whatever its age, once the circuit lets a
call through; until then it is not even read. A row is claimed by moving its
``next_sync_at`` forward with a conditional UPDATE, so replicas never work the same row at
once and a crashed worker's claim simply expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from datetime import datetime, timedelta

from paymux import metrics, request_context, tracing
from paymux.channels.base import ChannelResult
from paymux.domain.outcomes import Outcome
from paymux.domain.states import TransferStatus
from paymux.domain.transfers import Transfer
from paymux.service.channel_calls import recorded
from paymux.service.gateway import Gateway
from paymux.service.transfers import apply_result, order_for, send_once
from paymux.store.errors import StoreError

log = logging.getLogger(__name__)


def backoff_seconds(gw: Gateway, attempts: int) -> float:
    s = gw.settings
    base: float = min(
        s.sync_max_delay_seconds, s.sync_first_delay_seconds * (2 ** min(attempts, 20))
    )
    return base * (0.8 + 0.4 * random.random())  # jitter spreads a burst of retries


async def _due(gw: Gateway, now: datetime, pending_cutoff: datetime) -> list[Transfer]:
    # Parked sends wait for their circuit; they would only be refused.
    held = [name for name in gw.channels if not gw.circuits.would_admit(name)]
    return await gw.transfers.due(
        now=now,
        pending_cutoff=pending_cutoff,
        held_channels=held,
        limit=gw.settings.sync_batch_size,
    )


async def _claim(gw: Gateway, t: Transfer, now: datetime) -> bool:
    """Take the transfer for one attempt; its next attempt is due after the backoff."""
    lease = timedelta(seconds=backoff_seconds(gw, t.sync_attempts))
    return await gw.transfers.claim(t, now + lease)


async def _requeue(gw: Gateway, t: Transfer) -> None:
    """A parked send the circuit still refuses: due again when it may probe, and the refusal
    does not count as an attempt (the backoff must not grow while the channel is away)."""
    await gw.transfers.requeue(t, gw.clock() + timedelta(seconds=gw.circuits.policy.open_seconds))


async def resolve_one(gw: Gateway, t: Transfer) -> None:
    channel = gw.channels.get(t.channel)
    if channel is None:
        log.error("transfer %s is on channel %s, which is not configured", t.id, t.channel)
        return
    order = order_for(gw, t)
    if t.status is TransferStatus.pending:
        if not gw.circuits.admit(channel.name):
            await _requeue(gw, t)
            return
        log.warning("sending pending transfer %s as %s", t.id, order.reference)
        result = await send_once(gw, channel, order)
        gw.circuits.record(channel.name, result)
    else:
        metrics.sync_queries.labels(channel.name).inc()
        started = time.perf_counter()
        outcome = "error"
        try:
            with tracing.span("channel.query", channel=channel.name):
                result = await recorded(
                    gw, "query", channel.name, order.reference, channel.query(order)
                )
            outcome = result.outcome.value
        except Exception:
            gw.circuits.record_fault(channel.name)
            log.exception("query of %s failed", order.reference)
            return
        finally:
            metrics.channel_call_seconds.labels(channel.name, "query", outcome).observe(
                time.perf_counter() - started
            )
        gw.circuits.record(channel.name, result)
        if result.outcome is Outcome.NOT_FOUND:
            # The send never landed: send again under the same reference (deduped).
            log.warning("channel has no order %s; sending it again", order.reference)
            result = await send_once(gw, channel, order)
    if result.outcome is Outcome.NOT_FOUND:
        result = ChannelResult(Outcome.PROCESSING)
    await apply_result(gw, t.id, result, source="sync")


async def sync_once(gw: Gateway, *, recover_all_pending: bool = False) -> int:
    """One pass; returns how many transfers it worked on."""
    now = gw.clock()
    age = 0.0 if recover_all_pending else gw.settings.pending_recovery_age_seconds
    due = await _due(gw, now, now - timedelta(seconds=age))
    sem = asyncio.Semaphore(gw.settings.sync_concurrency)
    worked = 0

    async def work(t: Transfer) -> None:
        nonlocal worked
        async with sem:
            try:
                claimed = await _claim(gw, t, now)
            except StoreError as exc:  # e.g. its row lock is held: the other rows go on
                log.warning("could not claim transfer %s (%s); next pass", t.id, exc)
                return
            if not claimed:
                return
            worked += 1
            with request_context.transfer_scope(t.id):
                try:
                    await resolve_one(gw, t)
                except Exception:
                    log.exception("sync of transfer %s failed; it will be retried", t.id)

    await asyncio.gather(*(work(t) for t in due))
    return worked


async def run_sync_loop(gw: Gateway, stop: asyncio.Event) -> None:
    first = True
    while not stop.is_set():
        try:
            worked = await sync_once(gw, recover_all_pending=first)
            first = False
        except Exception:
            log.exception("sync pass failed")
            worked = 0
        if worked:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), gw.settings.sync_interval_seconds)
