"""Use cases of a transfer: create (hold, send once), apply a channel outcome, read, list.

Every status change goes through :func:`apply_result`: one transaction that moves the status
forward along the domain's state machine, posts the ledger entry that move implies, and
writes the outbox event. The send path, the sync loop and channel notifications all use it,
so a duplicate or late outcome is a no-op wherever it comes from.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, select, update

from paymux import hooks, metrics, request_context, tracing
from paymux.channels.base import Cancellable, Channel, ChannelResult, TransferOrder
from paymux.domain.failures import FailureCode, describe, unify
from paymux.domain.fees import FeeQuote
from paymux.domain.ids import channel_reference, new_id
from paymux.domain.ledger import (
    EntryKind,
    InsufficientFunds,
    JournalEntry,
    hold_entry,
    release_entry,
    reverse_entry,
    settle_entry,
)
from paymux.domain.outcomes import Outcome
from paymux.domain.payees import PayeeType
from paymux.domain.routing import RoutingError, route
from paymux.domain.states import TransferStatus, ledger_action, transition_path
from paymux.service import circuits
from paymux.service.channel_calls import recorded
from paymux.service.errors import (
    IdempotencyKeyReused,
    InsufficientFundsError,
    NotFound,
    RoutingFailed,
    TransferNotCancelable,
)
from paymux.service.gateway import Gateway
from paymux.service.views import transfer_view
from paymux.store import batch_repo, pending_pg
from paymux.store import ledger_repo as ledger
from paymux.store.errors import UniqueViolation
from paymux.store.fastexec import Prepared
from paymux.store.sealed import payee_account_index
from paymux.store.tables import transfers

log = logging.getLogger(__name__)

_TERMINAL_DONE = {
    TransferStatus.succeeded,
    TransferStatus.failed,
    TransferStatus.returned,
    TransferStatus.canceled,
}

# Built once: the hot path then only binds parameters to cached compiled statements.
_INSERT_TRANSFER = Prepared(transfers.insert())
_MUTABLE = (
    "status",
    "updated_at",
    "channel_order_id",
    "failure_code",
    "failure_message",
    "channel_failure_code",
    "channel_failure_message",
    "next_action",
    "completed_at",
    "next_sync_at",
    "sync_attempts",
)
_MOVE = Prepared(
    update(transfers)
    .where(transfers.c.id == bindparam("_id"), transfers.c.status == bindparam("_from"))
    .values({c: bindparam(c) for c in _MUTABLE})
)


@dataclass(frozen=True)
class NewTransfer:
    amount: int
    currency: str
    payee_type: str
    payee_account: str
    payee_name: str | None
    channel: str | None
    description: str | None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Created:
    row: dict[str, Any]
    replayed: bool  # an earlier request with this key already created it


def order_for(gw: Gateway, row: dict[str, Any]) -> TransferOrder:
    return TransferOrder(
        reference=row["channel_reference"],
        amount=row["amount"],
        currency=row["currency"],
        payee_type=PayeeType(row["payee_type"]),
        payee_account=row["payee_account"],
        payee_name=row["payee_name"],
        description=row["description"],
        notify_url=gw.notify_url(row["channel"]),
    )


async def quote_for(
    gw: Gateway, merchant_id: str, req: NewTransfer, at: datetime
) -> tuple[str, FeeQuote]:
    try:
        channel = route(
            req.payee_type, req.channel, gw.channel_payee_types(), gw.settings.channel_preference
        )
    except RoutingError as exc:
        raise RoutingFailed(str(exc), code_override=exc.code) from None
    fq = await gw.feebook.quote(
        merchant_id=merchant_id,
        channel=channel,
        payee_type=req.payee_type,
        amount=req.amount,
        at=at,
    )
    return channel, fq


async def create_transfer(
    gw: Gateway, merchant_id: str, idempotency_key: str, fingerprint: str, req: NewTransfer
) -> Created:
    """Write the pending transfer and its hold, then call the channel once."""
    now = gw.clock()
    channel_name, fq = await quote_for(gw, merchant_id, req, now)
    transfer_id = new_id("tr")
    request_context.transfer_id.set(transfer_id)  # the rest of this request is about it
    row: dict[str, Any] = {
        "id": transfer_id,
        "merchant_id": merchant_id,
        "idempotency_key": idempotency_key,
        "request_fingerprint": fingerprint,
        "status": TransferStatus.pending.value,
        "amount": req.amount,
        "currency": req.currency,
        "fee": fq.fee,
        "channel_cost": fq.channel_cost,
        "price_version": fq.price_version,
        "cost_version": fq.cost_version,
        "payee_type": req.payee_type,
        "payee_account": req.payee_account,
        "payee_name": req.payee_name,
        "payee_account_hmac": payee_account_index(req.payee_account),
        "channel": channel_name,
        "channel_reference": channel_reference(transfer_id),
        "channel_order_id": None,
        "failure_code": None,
        "failure_message": None,
        "channel_failure_code": None,
        "channel_failure_message": None,
        "next_action": None,
        "description": req.description,
        "metadata": orjson.dumps(req.metadata).decode() if req.metadata else None,
        "created_at": now,
        "updated_at": now,
        "completed_at": None,
        "next_sync_at": None,
        "sync_attempts": 0,
    }
    # An open circuit parks the transfer: written and held, queued for the sync loop (due at
    # next_sync_at), answered at once instead of waiting out a dead channel's timeouts.
    parked = not gw.circuits.would_admit(channel_name)
    if parked:
        row["next_sync_at"] = now + timedelta(seconds=gw.circuits.policy.open_seconds)
    hold = hold_entry(merchant_id, req.amount, fq.fee, req.currency)

    def write_pending(conn: Connection) -> None:
        _INSERT_TRANSFER.run(conn, row)
        ledger.post(conn, hold, now=now, merchant_id=merchant_id, transfer_id=transfer_id)

    def write_pending_pg(conn: Connection) -> None:
        pending_pg.insert_pending(conn, row, hold, now=now, merchant_id=merchant_id)

    try:
        if gw.db.is_sqlite:
            await gw.db.run_write(write_pending)
        else:
            await gw.db.run_statement(write_pending_pg)
    except InsufficientFunds:
        raise InsufficientFundsError(
            f"available balance does not cover amount {req.amount} + fee {fq.fee}",
            required=req.amount + fq.fee,
        ) from None
    except UniqueViolation:
        # The database's unique (merchant, key) is the final authority: an earlier request
        # with this key committed (its Redis record expired, was lost, or it raced us).
        existing = await get_by_idempotency_key(gw, merchant_id, idempotency_key)
        if existing is None:
            raise
        if existing["request_fingerprint"] != fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used with a different request body"
            ) from None
        return Created(existing, replayed=True)
    metrics.transfers_created.labels(channel_name).inc()
    hooks.reach("after_pending")
    if parked or not gw.circuits.admit(channel_name):
        if not parked:  # a concurrent request took the half-open probe: park this one
            row = await _park(gw, row, now)
        circuits.transfers_parked.labels(channel_name).inc()
        log.warning("channel %s circuit open: transfer %s parked", channel_name, transfer_id)
        return Created(row, replayed=False)
    result = await send_once(gw, gw.channels[channel_name], order_for(gw, row))
    gw.circuits.record(channel_name, result)
    hooks.reach("after_send")
    return Created(
        await apply_result(gw, transfer_id, result, source="send", known=row), replayed=False
    )


def insert_pending(conn: Connection, row: dict[str, Any], *, now: datetime) -> None:
    """A pending transfer and its hold, in the caller's transaction (batch acceptance).

    Raises InsufficientFunds (the caller's transaction then rolls back) when the merchant's
    available balance cannot cover it.
    """
    hold = hold_entry(row["merchant_id"], row["amount"], row["fee"], row["currency"])
    _INSERT_TRANSFER.run(conn, row)
    ledger.post(conn, hold, now=now, merchant_id=row["merchant_id"], transfer_id=row["id"])


async def _park(gw: Gateway, row: dict[str, Any], now: datetime) -> dict[str, Any]:
    due = now + timedelta(seconds=gw.circuits.policy.open_seconds)
    stmt = (
        update(transfers)
        .where(transfers.c.id == row["id"], transfers.c.status == TransferStatus.pending.value)
        .values(next_sync_at=due)
    )
    await gw.db.run_write(lambda conn: conn.execute(stmt))
    return {**row, "next_sync_at": due}


async def send_once(gw: Gateway, channel: Channel, order: TransferOrder) -> ChannelResult:
    """Send under the in-request bound; an outcome we did not see is PROCESSING."""
    metrics.channel_calls.labels(channel.name, "send").inc()
    started = time.perf_counter()
    outcome = "error"
    try:
        with tracing.span("channel.send", channel=channel.name):
            async with asyncio.timeout(gw.settings.channel_call_timeout_seconds):
                result = await recorded(
                    gw, "send", channel.name, order.reference, channel.send(order)
                )
        outcome = result.outcome.value
        return result
    except TimeoutError:
        outcome = "timeout"
        return ChannelResult(Outcome.PROCESSING, raw_status="paymux_call_timeout")
    except Exception:  # an adapter bug must not lose the transfer: the sync loop resolves it
        log.exception(
            "channel %s send raised; leaving transfer %s to the sync loop",
            channel.name,
            order.reference,
        )
        return ChannelResult(Outcome.PROCESSING, raw_status="paymux_adapter_error")
    finally:
        metrics.channel_call_seconds.labels(channel.name, "send", outcome).observe(
            time.perf_counter() - started
        )


def _entry_for(action: EntryKind, row: dict[str, Any]) -> JournalEntry:
    m, amt, fee, cur = row["merchant_id"], row["amount"], row["fee"], row["currency"]
    if action is EntryKind.settle:
        return settle_entry(m, row["channel"], amt, fee, row["channel_cost"], cur)
    if action is EntryKind.release:
        return release_entry(m, amt, fee, cur)
    if action is EntryKind.reverse:
        return reverse_entry(m, row["channel"], amt, cur)
    raise ValueError(f"no transfer entry for {action}")


async def apply_result(
    gw: Gateway,
    transfer_id: str,
    result: ChannelResult,
    *,
    source: str,
    known: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Move the transfer forward as ``result`` says, with its ledger entries and events.

    ``known`` is the row as the caller last saw it (the send path just wrote it): the move is
    then tried without reading it again, guarded by ``status = <known status>``; if someone
    else moved it meanwhile, the transaction starts over from a locked read.
    """
    now = gw.clock()

    def move(conn: Connection) -> tuple[dict[str, Any], bool]:
        row = dict(known) if known is not None else _locked_row(conn, transfer_id)
        for _ in range(2):
            changed = _move(gw, conn, row, result, now=now, source=source)
            if changed is not None:
                return row, changed
            row = _locked_row(conn, transfer_id)  # lost a race with the guess: read, retry
        raise RuntimeError(f"transfer {transfer_id} changed under its lock")

    row, changed = await gw.db.run_write(move)
    if changed:
        gw.outbox.notify_committed()
        log.info("transfer %s -> %s (%s)", transfer_id, row["status"], source)
    return row


def _move(
    gw: Gateway,
    conn: Connection,
    row: dict[str, Any],
    result: ChannelResult,
    *,
    now: datetime,
    source: str,
) -> bool | None:
    """Apply ``result`` to ``row`` (mutated). True moved, False no-op, None: row was stale."""
    transfer_id = row["id"]
    current = TransferStatus(row["status"])
    path = transition_path(current, result.outcome)
    if not path:
        if current is TransferStatus.succeeded and result.outcome is Outcome.FAILED:
            metrics.operator_alerts.labels("late_failure_after_success").inc()
            log.error(
                "ALERT transfer %s: %s says FAILED after SUCCEEDED; kept succeeded",
                transfer_id,
                source,
            )
        if current is TransferStatus.canceled and result.outcome is Outcome.SUCCEEDED:
            metrics.operator_alerts.labels("late_success_after_cancel").inc()
            log.error(
                "ALERT transfer %s: %s says SUCCEEDED after CANCELED; kept canceled",
                transfer_id,
                source,
            )
        return False
    for target in path:
        values: dict[str, Any] = {"status": target.value, "updated_at": now}
        if result.channel_order_id and not row["channel_order_id"]:
            values["channel_order_id"] = result.channel_order_id
        if target in (TransferStatus.failed, TransferStatus.canceled):
            values.update(_failure_fields(gw, row["channel"], target, result))
        if target is TransferStatus.requires_confirmation:
            values["next_action"] = (
                orjson.dumps(dict(result.next_action)).decode() if result.next_action else None
            )
        elif row.get("next_action"):
            values["next_action"] = None  # nothing left for the payee to do
        if target in _TERMINAL_DONE:
            values["completed_at"] = row["completed_at"] or now
            values["next_sync_at"] = None
        if target in (TransferStatus.processing, TransferStatus.requires_confirmation):
            values["next_sync_at"] = now + timedelta(seconds=gw.settings.sync_first_delay_seconds)
            values["sync_attempts"] = 0
        params = {c: values.get(c, row[c]) for c in _MUTABLE}
        if _MOVE.run(conn, {"_id": transfer_id, "_from": current.value, **params}) != 1:
            if target is path[0]:
                return None  # stale guess; nothing written yet in this attempt
            raise RuntimeError(f"transfer {transfer_id} changed mid-move")
        row.update(values)
        action = ledger_action(current, target)
        if action is not None:
            ledger.post(
                conn,
                _entry_for(action, row),
                now=now,
                merchant_id=row["merchant_id"],
                transfer_id=transfer_id,
            )
        gw.outbox.emit(
            conn,
            merchant_id=row["merchant_id"],
            event_type=f"transfer.{target.value}",
            obj=transfer_view(row),
            now=now,
        )
        metrics.transfer_transitions.labels(row["channel"], target.value).inc()
        current = target
    return True


def _failure_fields(
    gw: Gateway, channel_name: str, target: TransferStatus, result: ChannelResult
) -> dict[str, Any]:
    """Paymux's failure code for ``result`` plus the channel's own code and message."""
    raw_code = result.failure_code
    if target is TransferStatus.canceled:
        code = FailureCode.canceled
        raw_code = raw_code or result.raw_status
    elif raw_code is not None and raw_code in FailureCode.__members__:
        code = FailureCode(raw_code)  # decided by Paymux itself (e.g. insufficient_funds)
        raw_code = None
    else:
        channel = gw.channels.get(channel_name)
        unified = unify(raw_code, getattr(channel, "failure_codes", {}))
        code = unified.code
        if not unified.known:
            metrics.unknown_failure_codes.labels(channel_name).inc()
            log.warning(
                "channel %s failure code %r is not in its mapping; reported as %s",
                channel_name,
                raw_code,
                code.value,
            )
    return {
        "failure_code": code.value,
        "failure_message": describe(code.value),
        "channel_failure_code": raw_code[:64] if raw_code else None,
        "channel_failure_message": (result.failure_message or "")[:256] or None,
    }


async def cancel_transfer(gw: Gateway, merchant_id: str, transfer_id: str) -> dict[str, Any]:
    """Cancel a transfer waiting for its payee's confirmation; idempotent.

    The channel decides: the transfer becomes ``canceled`` only when the channel accepted
    the cancellation, so a cancel racing the payee's confirmation ends exactly one way.
    When the channel refuses (the payee confirmed first), its current state is applied and
    the answer is 409 ``transfer_not_cancelable``.
    """
    row = await get_transfer(gw, transfer_id, merchant_id)
    request_context.transfer_id.set(transfer_id)  # the rest of this request is about it
    status = TransferStatus(row["status"])
    if status is TransferStatus.canceled:
        return row
    if status is TransferStatus.pending:
        return await _cancel_unsent(gw, row)
    channel = gw.channels.get(row["channel"])
    if status is not TransferStatus.requires_confirmation or not isinstance(channel, Cancellable):
        raise _not_cancelable(row)
    order = order_for(gw, row)
    metrics.channel_calls.labels(row["channel"], "cancel").inc()
    started, outcome = time.perf_counter(), "error"
    try:
        with tracing.span("channel.cancel", channel=row["channel"]):
            async with asyncio.timeout(gw.settings.channel_call_timeout_seconds):
                result = await recorded(
                    gw, "cancel", channel.name, order.reference, channel.cancel(order)
                )
        outcome = result.outcome.value
    except Exception:
        log.exception("cancel of %s failed", order.reference)
        result = ChannelResult(Outcome.PROCESSING, raw_status="paymux_cancel_error")
    finally:
        metrics.channel_call_seconds.labels(row["channel"], "cancel", outcome).observe(
            time.perf_counter() - started
        )
    if result.outcome is Outcome.CANCELED:
        row = await apply_result(gw, transfer_id, result, source="cancel")
    else:
        # Refused or unseen: the channel's current state tells which way it went.
        try:
            async with asyncio.timeout(gw.settings.channel_call_timeout_seconds):
                state = await recorded(
                    gw, "query", channel.name, order.reference, channel.query(order)
                )
        except Exception:
            log.exception("query after refused cancel of %s failed", order.reference)
            state = ChannelResult(Outcome.PROCESSING)
        row = await apply_result(gw, transfer_id, state, source="cancel query")
    if row["status"] != TransferStatus.canceled.value:
        raise _not_cancelable(row)
    return row


async def _cancel_unsent(gw: Gateway, row: dict[str, Any]) -> dict[str, Any]:
    """A batch item's transfer still queued (never handed to a channel): cancel it and its
    item in one transaction; a worker that claimed the item first wins."""
    now = gw.clock()
    transfer_id = row["id"]

    def cancel(conn: Connection) -> dict[str, Any] | None:
        if not batch_repo.cancel_queued_item(conn, transfer_id):
            return None
        locked = _locked_row(conn, transfer_id)
        if not _move(gw, conn, locked, ChannelResult(Outcome.CANCELED), now=now, source="cancel"):
            raise RuntimeError(f"transfer {transfer_id} queued but not pending")
        return locked

    canceled = await gw.db.run_write(cancel)
    if canceled is None:
        raise _not_cancelable(row)
    gw.outbox.notify_committed()
    return canceled


def _not_cancelable(row: dict[str, Any]) -> TransferNotCancelable:
    return TransferNotCancelable(
        f"transfer {row['id']} is {row['status']}: only a transfer waiting for its payee's "
        "confirmation (or a batch item not yet sent) can be canceled",
        transfer_status=row["status"],
    )


def _locked_row(conn: Connection, transfer_id: str) -> dict[str, Any]:
    stmt = select(transfers).where(transfers.c.id == transfer_id)
    if conn.dialect.name != "sqlite":  # SQLite's single writer is the lock there
        stmt = stmt.with_for_update()
    found = conn.execute(stmt).mappings().first()
    if found is None:
        raise NotFound(f"no transfer {transfer_id}")
    return dict(found)


async def get_transfer(gw: Gateway, transfer_id: str, merchant_id: str | None) -> dict[str, Any]:
    stmt = select(transfers).where(transfers.c.id == transfer_id)
    if merchant_id is not None:
        stmt = stmt.where(transfers.c.merchant_id == merchant_id)
    async with gw.db.read() as conn:
        found = (await conn.execute(stmt)).mappings().first()
    if found is None:
        raise NotFound(f"no transfer {transfer_id}")
    return dict(found)


async def get_by_idempotency_key(gw: Gateway, merchant_id: str, key: str) -> dict[str, Any] | None:
    async with gw.db.read() as conn:
        found = (
            (
                await conn.execute(
                    select(transfers).where(
                        transfers.c.merchant_id == merchant_id, transfers.c.idempotency_key == key
                    )
                )
            )
            .mappings()
            .first()
        )
    return dict(found) if found else None


@dataclass(frozen=True)
class TransferFilter:
    merchant_id: str | None
    status: str | None = None
    failure_code: str | None = None
    channel: str | None = None
    created_gte: datetime | None = None
    created_lt: datetime | None = None
    starting_after: str | None = None  # cursor: the last id of the previous page
    limit: int = 20


async def list_transfers(gw: Gateway, f: TransferFilter) -> tuple[list[dict[str, Any]], bool]:
    """Newest first; ids are time-ordered, so the id is the cursor."""
    stmt = select(transfers).order_by(transfers.c.id.desc()).limit(f.limit + 1)
    if f.merchant_id is not None:
        stmt = stmt.where(transfers.c.merchant_id == f.merchant_id)
    if f.status:
        stmt = stmt.where(transfers.c.status == f.status)
    if f.failure_code:
        stmt = stmt.where(transfers.c.failure_code == f.failure_code)
    if f.channel:
        stmt = stmt.where(transfers.c.channel == f.channel)
    if f.created_gte:
        stmt = stmt.where(transfers.c.created_at >= f.created_gte)
    if f.created_lt:
        stmt = stmt.where(transfers.c.created_at < f.created_lt)
    if f.starting_after:
        stmt = stmt.where(transfers.c.id < f.starting_after)
    async with gw.db.read() as conn:
        rows = [dict(r) for r in (await conn.execute(stmt)).mappings()]
    return rows[: f.limit], len(rows) > f.limit
