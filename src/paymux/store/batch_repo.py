"""All SQL of batch payouts: batches, their items, and the items' view of their transfers.

Writes take the caller's (sync) Connection inside ``Database.run_write``; reads take an
AsyncConnection. Rows come back as the domain's frozen dataclasses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from paymux.domain.batches import Batch, BatchItem, BatchStatus, ItemState
from paymux.domain.transfers import Transfer
from paymux.store.batch_tables import transfer_batch_items, transfer_batches
from paymux.store.outbox_repo import insert_event
from paymux.store.tables import transfers
from paymux.store.transfer_rows import transfer_from_row

_b = transfer_batches.c
_i = transfer_batch_items.c
_t = transfers.c


def _batch(row: Mapping[Any, Any]) -> Batch:
    return Batch(
        id=row["id"],
        merchant_id=row["merchant_id"],
        idempotency_key=row["idempotency_key"],
        request_fingerprint=row["request_fingerprint"],
        all_or_nothing=bool(row["all_or_nothing"]),
        status=BatchStatus(row["status"]),
        item_count=int(row["item_count"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        completed_at=row["completed_at"],
    )


def _item(row: Mapping[Any, Any]) -> BatchItem:
    return BatchItem(
        id=int(row["id"]),
        batch_id=row["batch_id"],
        merchant_id=row["merchant_id"],
        seq=int(row["seq"]),
        reference=row["reference"],
        channel=row["channel"],
        amount=int(row["amount"]),
        currency=row["currency"],
        body=row["body"],
        state=ItemState(row["state"]),
        transfer_id=row["transfer_id"],
        failure_code=row["failure_code"],
        claimed_until=row["claimed_until"],
    )


# --- writes (sync, in the caller's transaction) -------------------------------------------


def insert_batch(conn: Connection, batch: Batch, items: Sequence[BatchItem]) -> None:
    conn.execute(
        transfer_batches.insert().values(
            id=batch.id,
            merchant_id=batch.merchant_id,
            idempotency_key=batch.idempotency_key,
            request_fingerprint=batch.request_fingerprint,
            all_or_nothing=batch.all_or_nothing,
            status=batch.status.value,
            item_count=batch.item_count,
            created_at=batch.created_at,
            updated_at=batch.updated_at,
            completed_at=None,
        )
    )
    conn.execute(
        transfer_batch_items.insert(),
        [
            {
                "batch_id": i.batch_id,
                "merchant_id": i.merchant_id,
                "seq": i.seq,
                "reference": i.reference,
                "channel": i.channel,
                "amount": i.amount,
                "currency": i.currency,
                "body": i.body,
                "state": i.state.value,
                "transfer_id": i.transfer_id,
                "failure_code": None,
                "claimed_until": None,
            }
            for i in items
        ],
    )


def claim_item(conn: Connection, item_id: int, *, now: datetime, until: datetime) -> bool:
    """Take a queued item (or one whose earlier claim ran out) for one dispatch attempt."""
    stmt = (
        update(transfer_batch_items)
        .where(
            _i.id == item_id,
            or_(
                _i.state == ItemState.queued.value,
                and_(_i.state == ItemState.dispatching.value, _i.claimed_until <= now),
            ),
        )
        .values(state=ItemState.dispatching.value, claimed_until=until)
    )
    return bool(conn.execute(stmt).rowcount == 1)


def set_item_transfer(conn: Connection, item_id: int, transfer_id: str) -> None:
    """The item's transfer exists (it stays dispatching until it was handed over)."""
    conn.execute(
        update(transfer_batch_items).where(_i.id == item_id).values(transfer_id=transfer_id)
    )


def set_item_submitted(conn: Connection, item_id: int, transfer_id: str) -> None:
    conn.execute(
        update(transfer_batch_items)
        .where(_i.id == item_id)
        .values(state=ItemState.submitted.value, transfer_id=transfer_id, claimed_until=None)
    )


def set_item_failed(conn: Connection, item_id: int, failure_code: str) -> None:
    conn.execute(
        update(transfer_batch_items)
        .where(_i.id == item_id, _i.state != ItemState.submitted.value)
        .values(state=ItemState.failed.value, failure_code=failure_code, claimed_until=None)
    )


def cancel_queued_item(conn: Connection, transfer_id: str) -> bool:
    """Cancel the still-queued item of ``transfer_id``; False if it is not (or no longer)."""
    stmt = (
        update(transfer_batch_items)
        .where(_i.transfer_id == transfer_id, _i.state == ItemState.queued.value)
        .values(state=ItemState.canceled.value, failure_code="canceled")
    )
    return bool(conn.execute(stmt).rowcount == 1)


def mark_completed(
    conn: Connection,
    batch_id: str,
    now: datetime,
    *,
    event_id: str,
    merchant_id: str,
    event_type: str,
    view: dict[str, Any],
) -> bool:
    """Complete the batch and write its event, once (False: it was already completed)."""
    stmt = (
        update(transfer_batches)
        .where(_b.id == batch_id, _b.status == BatchStatus.processing.value)
        .values(status=BatchStatus.completed.value, completed_at=now, updated_at=now)
    )
    if conn.execute(stmt).rowcount != 1:
        return False
    insert_event(
        conn,
        event_id=event_id,
        merchant_id=merchant_id,
        event_type=event_type,
        obj=view,
        now=now,
    )
    return True


# --- reads (async) --------------------------------------------------------------------------


async def get_batch(
    conn: AsyncConnection, batch_id: str, merchant_id: str | None = None
) -> Batch | None:
    stmt = select(transfer_batches).where(_b.id == batch_id)
    if merchant_id is not None:
        stmt = stmt.where(_b.merchant_id == merchant_id)
    row = (await conn.execute(stmt)).mappings().first()
    return _batch(row) if row else None


async def get_batch_by_key(conn: AsyncConnection, merchant_id: str, key: str) -> Batch | None:
    stmt = select(transfer_batches).where(_b.merchant_id == merchant_id, _b.idempotency_key == key)
    row = (await conn.execute(stmt)).mappings().first()
    return _batch(row) if row else None


async def processing_batch_ids(conn: AsyncConnection, limit: int) -> list[str]:
    stmt = (
        select(_b.id)
        .where(_b.status == BatchStatus.processing.value)
        .order_by(_b.created_at)
        .limit(limit)
    )
    return [r for (r,) in (await conn.execute(stmt)).all()]


async def dispatchable_items(
    conn: AsyncConnection, batch_id: str, *, now: datetime, limit: int, reclaim_all: bool
) -> list[BatchItem]:
    """Queued items, and dispatching ones whose claim ran out (or all: after a restart)."""
    expired = _i.state == ItemState.dispatching.value
    if not reclaim_all:
        expired = and_(expired, _i.claimed_until <= now)
    stmt = (
        select(transfer_batch_items)
        .where(_i.batch_id == batch_id, or_(_i.state == ItemState.queued.value, expired))
        .order_by(_i.seq)
        .limit(limit)
    )
    return [_item(r) for r in (await conn.execute(stmt)).mappings()]


async def item_states(
    conn: AsyncConnection, batch_id: str
) -> list[tuple[ItemState, str | None, int, int, int]]:
    """(item state, transfer status, count, sum amount, sum fee) per group."""
    stmt = (
        select(
            _i.state,
            _t.status,
            func.count(),
            func.coalesce(func.sum(_i.amount), 0),
            func.coalesce(func.sum(_t.fee), 0),
        )
        .select_from(transfer_batch_items.outerjoin(transfers, _t.id == _i.transfer_id))
        .where(_i.batch_id == batch_id)
        .group_by(_i.state, _t.status)
    )
    return [
        (ItemState(state), status, int(n), int(amount), int(fee))
        for state, status, n, amount, fee in (await conn.execute(stmt)).all()
    ]


async def list_items(
    conn: AsyncConnection, batch_id: str, *, after_seq: int | None, limit: int
) -> list[tuple[BatchItem, Transfer | None]]:
    """Items in request order, each with its transfer (or None)."""
    stmt = (
        select(transfer_batch_items, transfers)
        .select_from(transfer_batch_items.outerjoin(transfers, _t.id == _i.transfer_id))
        .where(_i.batch_id == batch_id)
        .order_by(_i.seq)
        .limit(limit)
    )
    if after_seq is not None:
        stmt = stmt.where(_i.seq > after_seq)
    result = await conn.execute(stmt)
    out: list[tuple[BatchItem, Transfer | None]] = []
    item_cols = [c.name for c in transfer_batch_items.columns]
    n = len(item_cols)
    transfer_cols = [c.name for c in transfers.columns]
    for row in result.all():
        values = tuple(row)
        item = _item(dict(zip(item_cols, values[:n], strict=True)))
        transfer = dict(zip(transfer_cols, values[n:], strict=True))
        out.append((item, transfer_from_row(transfer) if transfer["id"] is not None else None))
    return out


async def item_by_id(conn: AsyncConnection, item_id: int) -> BatchItem | None:
    row = (
        (await conn.execute(select(transfer_batch_items).where(_i.id == item_id)))
        .mappings()
        .first()
    )
    return _item(row) if row else None
