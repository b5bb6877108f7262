"""Batch payouts: accept a batch at once, work it off in the background, report on it.

Accepting writes the batch and its items (and, for ``all_or_nothing``, every item's
pending transfer and hold in the same transaction, so the whole batch fits or nothing is
held). A background loop then dispatches items with bounded concurrency and a rate limit
per channel. Each item is claimed (a lease) before it is dispatched; its transfer is
created under the item's reference as idempotency key and sent under the transfer's one
channel reference, so a worker that dies mid-batch is simply replaced: the next claim finds
the same transfer and at most resends under the same reference, which the channel dedupes.
When every item is final the batch completes and emits ``transfer_batch.completed``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from paymux.domain.batches import (
    Batch,
    BatchItem,
    BatchStatus,
    ItemState,
    all_final,
    duplicate_references,
    item_idempotency_key,
    item_status,
)
from paymux.domain.failures import FailureCode
from paymux.domain.fees import FeeQuote
from paymux.domain.ids import new_id
from paymux.domain.ledger import InsufficientFunds
from paymux.domain.routing import RoutingError, route
from paymux.domain.states import TransferStatus
from paymux.domain.transfers import Transfer
from paymux.service import transfers as tx
from paymux.service.errors import (
    IdempotencyKeyReused,
    InsufficientFundsError,
    InvalidRequest,
    NotFound,
    ServiceError,
)
from paymux.service.gateway import Gateway
from paymux.service.views import iso, transfer_view
from paymux.store import batch_repo as repo
from paymux.store.errors import UniqueViolation
from paymux.store.idempotency import fingerprint

log = logging.getLogger(__name__)

# all_or_nothing transfers wait for the batch worker, not the sync loop's pending recovery.
_PARKED = timedelta(days=30)


@dataclass(frozen=True)
class NewItem:
    reference: str
    transfer: tx.NewTransfer
    body: dict[str, Any]  # the item's transfer body as JSON, for storage and fingerprint


@dataclass(frozen=True)
class Accepted:
    batch: Batch
    replayed: bool


async def create_batch(
    gw: Gateway,
    merchant_id: str,
    idempotency_key: str,
    request_fingerprint: str,
    items: list[NewItem],
    *,
    all_or_nothing: bool,
) -> Accepted:
    async with gw.db.read() as conn:
        existing = await repo.get_batch_by_key(conn, merchant_id, idempotency_key)
    if existing is not None:
        return _replay(existing, request_fingerprint)
    dupes = duplicate_references(i.reference for i in items)
    if dupes:
        raise InvalidRequest(f"references must be unique within a batch: {dupes[:10]}")
    now = gw.clock()
    batch = Batch(
        id=new_id("tb"),
        merchant_id=merchant_id,
        idempotency_key=idempotency_key,
        request_fingerprint=request_fingerprint,
        all_or_nothing=all_or_nothing,
        status=BatchStatus.processing,
        item_count=len(items),
        created_at=now,
        updated_at=now,
        completed_at=None,
    )
    pending: list[Transfer] = []
    channels: list[str] = []
    for n, item in enumerate(items):
        if all_or_nothing:
            channel, fq = await tx.quote_for(gw, merchant_id, item.transfer, now)
            pending.append(_parked(merchant_id, item, channel, fq, now))
        else:
            try:
                channel = route(
                    item.transfer.payee_type,
                    item.transfer.channel,
                    gw.channel_payee_types(),
                    gw.settings.channel_preference,
                )
            except RoutingError as exc:
                raise InvalidRequest(f"items[{n}]: {exc}", code_override=exc.code) from None
        channels.append(channel)
    batch_items = [
        BatchItem(
            id=0,
            batch_id=batch.id,
            merchant_id=merchant_id,
            seq=n,
            reference=item.reference,
            channel=channels[n],
            amount=item.transfer.amount,
            currency=item.transfer.currency,
            body=orjson.dumps(item.body).decode(),
            state=ItemState.queued,
            transfer_id=pending[n].id if all_or_nothing else None,
            failure_code=None,
            claimed_until=None,
        )
        for n, item in enumerate(items)
    ]
    try:
        # all_or_nothing: every hold in this one transaction, or none
        await gw.transfers.accept_batch(batch, batch_items, pending)
    except InsufficientFunds:
        total = sum(t.amount + t.fee for t in pending)
        raise InsufficientFundsError(
            f"available balance does not cover the batch's amount + fees ({total})",
            required=total,
        ) from None
    except UniqueViolation:
        async with gw.db.read() as conn:
            raced = await repo.get_batch_by_key(conn, merchant_id, idempotency_key)
        if raced is not None:
            return _replay(raced, request_fingerprint)
        raise InvalidRequest(
            "an item's reference was already used by an earlier transfer of this merchant"
        ) from None
    log.info("batch %s accepted: %d items", batch.id, len(items))
    _wake_event(gw).set()
    return Accepted(batch, replayed=False)


def _replay(existing: Batch, request_fingerprint: str) -> Accepted:
    if existing.request_fingerprint != request_fingerprint:
        raise IdempotencyKeyReused("this Idempotency-Key was used with a different batch")
    return Accepted(existing, replayed=True)


def _parked(merchant_id: str, item: NewItem, channel: str, fq: FeeQuote, now: datetime) -> Transfer:
    return tx.new_pending(
        transfer_id=new_id("tr"),
        merchant_id=merchant_id,
        idempotency_key=item_idempotency_key(item.reference),
        fingerprint=fingerprint(item.body),
        req=item.transfer,
        channel=channel,
        fq=fq,
        now=now,
        next_sync_at=now + _PARKED,
    )


# --- reads ----------------------------------------------------------------------------------


async def get_batch(gw: Gateway, batch_id: str, merchant_id: str | None) -> dict[str, Any]:
    async with gw.db.read() as conn:
        batch = await repo.get_batch(conn, batch_id, merchant_id)
        if batch is None:
            raise NotFound(f"no transfer batch {batch_id}")
        states = await repo.item_states(conn, batch_id)
    return batch_view(batch, states)


def batch_view(
    batch: Batch, states: list[tuple[ItemState, str | None, int, int, int]]
) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    amount = fee = 0
    for state, status, n, amt, f in states:
        counts[item_status(state, status)] += n
        amount += amt
        fee += f
    return {
        "id": batch.id,
        "object": "transfer_batch",
        "status": batch.status.value,
        "all_or_nothing": batch.all_or_nothing,
        "item_count": batch.item_count,
        "counts": dict(sorted(counts.items())),
        "totals": {"amount": amount, "fee": fee, "currency": "CNY"},
        "created_at": iso(batch.created_at),
        "completed_at": iso(batch.completed_at),
    }


def item_id(batch_id: str, seq: int) -> str:
    return f"{batch_id}.{seq}"


async def list_items(
    gw: Gateway, batch_id: str, merchant_id: str | None, *, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    after: int | None = None
    if cursor is not None:
        prefix, _, seq = cursor.rpartition(".")
        if prefix != batch_id or not seq.isdigit():
            raise InvalidRequest("cursor is not an item id of this batch")
        after = int(seq)
    async with gw.db.read() as conn:
        if await repo.get_batch(conn, batch_id, merchant_id) is None:
            raise NotFound(f"no transfer batch {batch_id}")
        rows = await repo.list_items(conn, batch_id, after_seq=after, limit=limit + 1)
    data = [
        {
            "id": item_id(batch_id, item.seq),
            "object": "transfer_batch_item",
            "reference": item.reference,
            "status": item_status(item.state, t.status.value if t else None),
            "failure_code": item.failure_code if item.state is not ItemState.submitted else None,
            "transfer": transfer_view(t) if t else None,
        }
        for item, t in rows[:limit]
    ]
    return data, len(rows) > limit


# --- the background worker ------------------------------------------------------------------


class _Pacer:
    """At most ``rate`` starts per second (per process): real channels cap QPS."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next = 0.0
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self.lock:
            now = asyncio.get_running_loop().time()
            start = max(now, self.next)
            self.next = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)


class _Limits:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.sems: dict[str, asyncio.Semaphore] = {}
        self.pacers: dict[str, _Pacer] = {}

    def sem(self, channel: str) -> asyncio.Semaphore:
        if channel not in self.sems:
            s = self.gw.settings
            self.sems[channel] = asyncio.Semaphore(
                s.batch_concurrency.get(channel, s.batch_default_concurrency)
            )
        return self.sems[channel]

    def pacer(self, channel: str) -> _Pacer:
        if channel not in self.pacers:
            s = self.gw.settings
            self.pacers[channel] = _Pacer(
                s.batch_rate_per_second.get(channel, s.batch_default_rate_per_second)
            )
        return self.pacers[channel]


async def dispatch(gw: Gateway, limits: _Limits, batch: Batch, item: BatchItem) -> bool:
    """Claim ``item`` and hand its transfer to the channel; False if someone else has it.

    The claim is taken only when the channel has a free slot, so an item waiting its turn
    stays ``queued`` (and its parked transfer cancelable) until then.
    """
    async with limits.sem(item.channel):
        await limits.pacer(item.channel).wait()
        now = gw.clock()
        until = now + timedelta(seconds=gw.settings.batch_claim_seconds)
        if not await gw.db.run_write(
            lambda conn: repo.claim_item(conn, item.id, now=now, until=until)
        ):
            return False
        try:
            transfer_id = await _send_item(gw, batch, item)
        except ServiceError as exc:
            code = (
                FailureCode.insufficient_funds
                if isinstance(exc, InsufficientFundsError)
                else FailureCode.invalid_request
            )
            log.info("batch %s item %s refused: %s", batch.id, item.reference, exc.detail)
            await gw.db.run_write(lambda conn: repo.set_item_failed(conn, item.id, code.value))
            return True
    await gw.db.run_write(lambda conn: repo.set_item_submitted(conn, item.id, transfer_id))
    return True


async def _send_item(gw: Gateway, batch: Batch, item: BatchItem) -> str:
    channel = gw.channels[item.channel]
    if item.transfer_id is not None:  # all_or_nothing: the pending transfer exists
        t = await tx.get_transfer(gw, item.transfer_id, batch.merchant_id)
    else:
        body = orjson.loads(item.body)
        created = await tx.create_transfer(
            gw,
            batch.merchant_id,
            item_idempotency_key(item.reference),
            fingerprint(body),
            _new_transfer(body),
        )
        t = created.transfer
        if not created.replayed:
            return t.id  # create_transfer sent it
    if t.status is TransferStatus.pending:
        # First send of a parked transfer, or a resend after a crash: same reference.
        result = await tx.send_once(gw, channel, tx.order_for(gw, t))
        t = await tx.apply_result(gw, t.id, result, source="batch")
    return t.id


def _new_transfer(body: dict[str, Any]) -> tx.NewTransfer:
    payee = body["payee"]
    return tx.NewTransfer(
        amount=body["amount"],
        currency=body["currency"],
        payee_type=payee["type"],
        payee_account=payee["account"],
        payee_name=payee.get("name"),
        channel=body.get("channel"),
        description=body.get("description"),
        metadata=body.get("metadata") or {},
    )


async def _complete_if_done(gw: Gateway, batch: Batch) -> bool:
    async with gw.db.read() as conn:
        states = await repo.item_states(conn, batch.id)
    if not all_final((state, status) for state, status, *_ in states):
        return False
    now = gw.clock()
    done = dataclasses.replace(batch, status=BatchStatus.completed, completed_at=now)
    view = batch_view(done, states)

    completed = await gw.db.run_write(
        lambda conn: repo.mark_completed(
            conn,
            batch.id,
            now,
            event_id=new_id("evt"),
            merchant_id=batch.merchant_id,
            event_type="transfer_batch.completed",
            view=view,
        )
    )
    if completed:
        gw.outbox.notify_committed()
        log.info("batch %s completed", batch.id)
        return True
    return False


async def batch_pass(gw: Gateway, limits: _Limits, *, reclaim_all: bool = False) -> int:
    """One pass over the batches in progress; returns how much it did (-1: none exist)."""
    async with gw.db.read() as conn:
        ids = await repo.processing_batch_ids(conn, limit=20)
    if not ids:
        return -1
    worked = 0
    for batch_id in ids:
        async with gw.db.read() as conn:
            batch = await repo.get_batch(conn, batch_id)
            items = await repo.dispatchable_items(
                conn, batch_id, now=gw.clock(), limit=2000, reclaim_all=reclaim_all
            )
        if batch is None:
            continue
        if items:
            results = await asyncio.gather(
                *(dispatch(gw, limits, batch, item) for item in items), return_exceptions=True
            )
            for item, res in zip(items, results, strict=True):
                if isinstance(res, BaseException):
                    log.error(
                        "batch %s item %s: %r (retried after its claim runs out)",
                        batch_id,
                        item.reference,
                        res,
                    )
            worked += sum(1 for r in results if r is True)
        worked += await _complete_if_done(gw, batch)
    return worked


# Set when this process accepts a batch, so an idle worker starts at once.
_WAKE: dict[int, asyncio.Event] = {}


def _wake_event(gw: Gateway) -> asyncio.Event:
    return _WAKE.setdefault(id(gw), asyncio.Event())


async def _sleep(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        wake.clear()


async def run_batch_loop(gw: Gateway, stop: asyncio.Event) -> None:
    limits = _Limits(gw)
    wake = _wake_event(gw)
    first = True  # after a restart, items a dead worker had claimed are taken at once
    while not stop.is_set():
        try:
            worked = await batch_pass(gw, limits, reclaim_all=first)
            first = False
        except Exception:
            log.exception("batch pass failed")
            worked = 0
        if worked > 0:
            continue
        # No batch at all: poll rarely (batches of other replicas), wake on our own.
        idle = worked < 0
        s = gw.settings
        await _sleep(
            stop, wake, s.batch_idle_interval_seconds if idle else s.batch_interval_seconds
        )
