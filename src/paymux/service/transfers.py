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
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import orjson

from paymux import hooks, metrics, request_context, tracing
from paymux.channels.base import Cancellable, Channel, ChannelResult, TransferOrder
from paymux.domain.failures import FailureCode, describe, unify
from paymux.domain.fees import FeeQuote
from paymux.domain.ids import channel_reference, new_id
from paymux.domain.ledger import InsufficientFunds
from paymux.domain.outcomes import Outcome
from paymux.domain.payees import PayeeType
from paymux.domain.routing import RoutingError, route
from paymux.domain.states import TransferStatus, ledger_action, transition_path
from paymux.domain.transfers import Transfer
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
from paymux.store.errors import UniqueViolation
from paymux.store.sealed import payee_account_index
from paymux.store.transfer_repo import Event, NoSuchTransfer, Plan, Step, TransferFilter

__all__ = ["TransferFilter"]  # the API builds list filters through this module

log = logging.getLogger(__name__)

_TERMINAL_DONE = {
    TransferStatus.succeeded,
    TransferStatus.failed,
    TransferStatus.returned,
    TransferStatus.canceled,
}


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
    transfer: Transfer
    replayed: bool  # an earlier request with this key already created it


def order_for(gw: Gateway, t: Transfer) -> TransferOrder:
    return TransferOrder(
        reference=t.channel_reference,
        amount=t.amount,
        currency=t.currency,
        payee_type=PayeeType(t.payee_type),
        payee_account=t.payee_account,
        payee_name=t.payee_name,
        description=t.description,
        notify_url=gw.notify_url(t.channel),
    )


def new_pending(
    *,
    transfer_id: str,
    merchant_id: str,
    idempotency_key: str,
    fingerprint: str,
    req: NewTransfer,
    channel: str,
    fq: FeeQuote,
    now: datetime,
    next_sync_at: datetime | None,
) -> Transfer:
    """A transfer as it is written: pending, its fee quoted, not yet sent."""
    return Transfer(
        id=transfer_id,
        merchant_id=merchant_id,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint,
        status=TransferStatus.pending,
        amount=req.amount,
        currency=req.currency,
        fee=fq.fee,
        channel_cost=fq.channel_cost,
        price_version=fq.price_version,
        cost_version=fq.cost_version,
        payee_type=req.payee_type,
        payee_account=req.payee_account,
        payee_name=req.payee_name,
        payee_account_hmac=payee_account_index(req.payee_account),
        channel=channel,
        channel_reference=channel_reference(transfer_id),
        channel_order_id=None,
        failure_code=None,
        failure_message=None,
        channel_failure_code=None,
        channel_failure_message=None,
        next_action=None,
        description=req.description,
        metadata=orjson.dumps(req.metadata).decode() if req.metadata else None,
        created_at=now,
        updated_at=now,
        completed_at=None,
        next_sync_at=next_sync_at,
        sync_attempts=0,
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
    # An open circuit parks the transfer: written and held, queued for the sync loop (due at
    # next_sync_at), answered at once instead of waiting out a dead channel's timeouts.
    parked = not gw.circuits.would_admit(channel_name)
    t = new_pending(
        transfer_id=transfer_id,
        merchant_id=merchant_id,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint,
        req=req,
        channel=channel_name,
        fq=fq,
        now=now,
        next_sync_at=now + timedelta(seconds=gw.circuits.policy.open_seconds) if parked else None,
    )
    try:
        await gw.transfers.create_pending(t)
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
        if existing.request_fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used with a different request body"
            ) from None
        return Created(existing, replayed=True)
    metrics.transfers_created.labels(channel_name).inc()
    # Logged by the request that wrote it: the channel's notification may apply the outcome
    # before this request does, and a request's log must still say what it did.
    log.info(
        "transfer %s created on %s (%s)",
        transfer_id,
        channel_name,
        "parked" if parked else "pending",
    )
    hooks.reach("after_pending")
    if parked or not gw.circuits.admit(channel_name):
        if not parked:  # a concurrent request took the half-open probe: park this one
            due = now + timedelta(seconds=gw.circuits.policy.open_seconds)
            t = await gw.transfers.park(t, due)
        circuits.transfers_parked.labels(channel_name).inc()
        log.warning("channel %s circuit open: transfer %s parked", channel_name, transfer_id)
        return Created(t, replayed=False)
    result = await send_once(gw, gw.channels[channel_name], order_for(gw, t))
    gw.circuits.record(channel_name, result)
    hooks.reach("after_send")
    return Created(
        await apply_result(gw, transfer_id, result, source="send", known=t), replayed=False
    )


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


async def apply_result(
    gw: Gateway,
    transfer_id: str,
    result: ChannelResult,
    *,
    source: str,
    known: Transfer | None = None,
) -> Transfer:
    """Move the transfer forward as ``result`` says, with its ledger entries and events.

    ``known`` is the transfer as the caller last saw it (the send path just wrote it): the
    repository then tries the move without reading it again (see TransferRepo.move).
    """
    try:
        moved = await gw.transfers.move(
            transfer_id, plan_for(gw, result, now=gw.clock(), source=source), known=known
        )
    except NoSuchTransfer:
        raise NotFound(f"no transfer {transfer_id}") from None
    _moved(gw, moved.transfer, moved.steps, source)
    return moved.transfer


def _moved(gw: Gateway, t: Transfer, steps: tuple[Step, ...], source: str) -> None:
    """After the commit of a move: wake the relay, count and log it."""
    if not steps:
        return
    for step in steps:
        metrics.transfer_transitions.labels(t.channel, step.after.status.value).inc()
    gw.outbox.notify_committed()
    log.info("transfer %s -> %s (%s)", t.id, t.status.value, source)


def plan_for(gw: Gateway, result: ChannelResult, *, now: datetime, source: str) -> Plan:
    """The steps ``result`` makes from whatever state the transfer is in (the state machine
    of domain/states.py); none for a duplicate, late or backwards outcome."""

    def plan(current: Transfer) -> list[Step]:
        path = transition_path(current.status, result.outcome)
        if not path:
            _alert_if_contradicted(current, result, source)
            return []
        steps: list[Step] = []
        before = current
        for target in path:
            after = replace(before, **_values(gw, before, target, result, now))
            action = ledger_action(before.status, target)
            steps.append(
                Step(
                    after=after,
                    entry=after.entry_for(action) if action is not None else None,
                    event=Event(f"transfer.{target.value}", transfer_view(after)),
                )
            )
            before = after
        return steps

    return plan


def _values(
    gw: Gateway, t: Transfer, target: TransferStatus, result: ChannelResult, now: datetime
) -> dict[str, Any]:
    """The fields one step to ``target`` changes."""
    values: dict[str, Any] = {"status": target, "updated_at": now}
    if result.channel_order_id and not t.channel_order_id:
        values["channel_order_id"] = result.channel_order_id
    if target in (TransferStatus.failed, TransferStatus.canceled):
        values.update(_failure_fields(gw, t.channel, target, result))
    if target is TransferStatus.requires_confirmation:
        values["next_action"] = (
            orjson.dumps(dict(result.next_action)).decode() if result.next_action else None
        )
    elif t.next_action:
        values["next_action"] = None  # nothing left for the payee to do
    if target in _TERMINAL_DONE:
        values["completed_at"] = t.completed_at or now
        values["next_sync_at"] = None
    if target in (TransferStatus.processing, TransferStatus.requires_confirmation):
        values["next_sync_at"] = now + timedelta(seconds=gw.settings.sync_first_delay_seconds)
        values["sync_attempts"] = 0
    return values


# A final state the channel later contradicts: kept (states only move forward), and an
# operator is alerted, since the money may have moved the other way at the channel.
_CONTRADICTIONS = {
    (TransferStatus.succeeded, Outcome.FAILED): "late_failure_after_success",
    (TransferStatus.canceled, Outcome.SUCCEEDED): "late_success_after_cancel",
}


def _alert_if_contradicted(current: Transfer, result: ChannelResult, source: str) -> None:
    alert = _CONTRADICTIONS.get((current.status, result.outcome))
    if alert is None:
        return
    metrics.operator_alerts.labels(alert).inc()
    log.error(
        "ALERT transfer %s: %s says %s after %s; kept %s",
        current.id,
        source,
        result.outcome.value.upper(),
        current.status.value.upper(),
        current.status.value,
    )


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


async def cancel_transfer(gw: Gateway, merchant_id: str, transfer_id: str) -> Transfer:
    """Cancel a transfer waiting for its payee's confirmation; idempotent.

    The channel decides: the transfer becomes ``canceled`` only when the channel accepted
    the cancellation, so a cancel racing the payee's confirmation ends exactly one way.
    When the channel refuses (the payee confirmed first), its current state is applied and
    the answer is 409 ``transfer_not_cancelable``.
    """
    t = await get_transfer(gw, transfer_id, merchant_id)
    request_context.transfer_id.set(transfer_id)  # the rest of this request is about it
    if t.status is TransferStatus.canceled:
        return t
    if t.status is TransferStatus.pending:
        return await _cancel_unsent(gw, t)
    channel = gw.channels.get(t.channel)
    if t.status is not TransferStatus.requires_confirmation or not isinstance(channel, Cancellable):
        raise _not_cancelable(t)
    order = order_for(gw, t)
    metrics.channel_calls.labels(t.channel, "cancel").inc()
    started, outcome = time.perf_counter(), "error"
    try:
        with tracing.span("channel.cancel", channel=t.channel):
            async with asyncio.timeout(gw.settings.channel_call_timeout_seconds):
                result = await recorded(
                    gw, "cancel", channel.name, order.reference, channel.cancel(order)
                )
        outcome = result.outcome.value
    except Exception:
        log.exception("cancel of %s failed", order.reference)
        result = ChannelResult(Outcome.PROCESSING, raw_status="paymux_cancel_error")
    finally:
        metrics.channel_call_seconds.labels(t.channel, "cancel", outcome).observe(
            time.perf_counter() - started
        )
    if result.outcome is Outcome.CANCELED:
        t = await apply_result(gw, transfer_id, result, source="cancel")
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
        t = await apply_result(gw, transfer_id, state, source="cancel query")
    if t.status is not TransferStatus.canceled:
        raise _not_cancelable(t)
    return t


async def _cancel_unsent(gw: Gateway, t: Transfer) -> Transfer:
    """A batch item's transfer still queued (never handed to a channel): cancel it and its
    item in one transaction; a worker that claimed the item first wins."""
    plan = plan_for(gw, ChannelResult(Outcome.CANCELED), now=gw.clock(), source="cancel")
    moved = await gw.transfers.cancel_queued(t.id, plan)
    if moved is None:
        raise _not_cancelable(t)
    _moved(gw, moved.transfer, moved.steps, "cancel")
    return moved.transfer


def _not_cancelable(t: Transfer) -> TransferNotCancelable:
    return TransferNotCancelable(
        f"transfer {t.id} is {t.status.value}: only a transfer waiting for its payee's "
        "confirmation (or a batch item not yet sent) can be canceled",
        transfer_status=t.status.value,
    )


async def get_transfer(gw: Gateway, transfer_id: str, merchant_id: str | None) -> Transfer:
    found = await gw.transfers.get(transfer_id, merchant_id)
    if found is None:
        raise NotFound(f"no transfer {transfer_id}")
    return found


async def get_by_idempotency_key(gw: Gateway, merchant_id: str, key: str) -> Transfer | None:
    return await gw.transfers.by_idempotency_key(merchant_id, key)


async def list_transfers(gw: Gateway, f: TransferFilter) -> tuple[list[Transfer], bool]:
    """Newest first; ids are time-ordered, so the id is the cursor."""
    return await gw.transfers.page(f)
