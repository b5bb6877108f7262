"""Reconciliation (对账) matching rules: a channel's statement against our transfers.

Pure: the service streams the statement's lines into a :class:`StatementDay`, looks the
references up in the store in chunks, and asks :func:`judge` what disagrees. What may heal is
decided by :func:`heal_decision` from the channel's *query* answer, never from the file:
a file alone never moves money.

Discrepancy classes
-------------------
* ``missing_in_paymux``: the channel moved money under a reference we do not know.
* ``missing_in_statement``: we say the transfer succeeded that day; the statement has no
  payment line for it (cleared if a later day's statement carries it).
* ``status_mismatch``: the channel paid a transfer we hold as pending/processing/failed, or
  returned one we hold as succeeded.
* ``amount_mismatch``: the channel moved a different amount than the transfer's.
* ``channel_fee_mismatch``: the channel charged a different fee than our cost schedule said.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from paymux.domain.outcomes import Outcome
from paymux.domain.statement_lines import StatementLine, StatementLineKind
from paymux.domain.states import TransferStatus, transition_path


class DiscrepancyKind(enum.StrEnum):
    missing_in_paymux = "missing_in_paymux"
    missing_in_statement = "missing_in_statement"
    status_mismatch = "status_mismatch"
    amount_mismatch = "amount_mismatch"
    channel_fee_mismatch = "channel_fee_mismatch"


class DiscrepancyState(enum.StrEnum):
    open = "open"
    resolved = "resolved"


class Severity(enum.StrEnum):
    normal = "normal"
    critical = "critical"  # money moved in a way the state machine forbids: a person must act


# Statuses whose payment must appear on the channel's statement of the day it completed.
PAID_STATUSES = frozenset({TransferStatus.succeeded, TransferStatus.returned})
_NOT_PAID = frozenset(
    {
        TransferStatus.pending,
        TransferStatus.processing,
        TransferStatus.requires_confirmation,
        TransferStatus.failed,
        TransferStatus.canceled,
    }
)


@dataclass(slots=True)
class ReferenceLines:
    """Everything one day's statement moved under one reference (fen, summed)."""

    reference: str
    channel_order_id: str | None = None
    currency: str = "CNY"
    paid: int = 0
    refunded: int = 0
    fee: int = 0
    first_line: int = 0

    @property
    def channel_view(self) -> str:
        """What the channel's file says happened: paid, returned, or paid and returned."""
        if self.paid and self.refunded:
            return "paid_and_returned"
        if self.refunded:
            return "returned"
        if self.paid:
            return "paid"
        return "fee_only"


@dataclass(slots=True)
class StatementTotals:
    lines: int = 0
    payments: int = 0
    payment_total: int = 0
    refunds: int = 0
    refund_total: int = 0
    fees: int = 0
    fee_total: int = 0
    other: int = 0


@dataclass
class StatementDay:
    """One day's statement folded per reference (memory: one small record per reference)."""

    by_reference: dict[str, ReferenceLines] = field(default_factory=dict)
    totals: StatementTotals = field(default_factory=StatementTotals)

    def add(self, line: StatementLine) -> None:
        t = self.totals
        t.lines += 1
        if line.kind is StatementLineKind.OTHER or not line.reference:
            t.other += 1
            return
        ref = self.by_reference.get(line.reference)
        if ref is None:
            ref = self.by_reference[line.reference] = ReferenceLines(
                line.reference, line.channel_order_id, line.currency, first_line=line.line_no
            )
        if line.kind is StatementLineKind.PAYMENT:
            ref.paid += line.amount
            t.payments, t.payment_total = t.payments + 1, t.payment_total + line.amount
        elif line.kind is StatementLineKind.REFUND:
            ref.refunded += line.amount
            t.refunds, t.refund_total = t.refunds + 1, t.refund_total + line.amount
        else:
            ref.fee += line.amount
            t.fees, t.fee_total = t.fees + 1, t.fee_total + line.amount

    def add_all(self, lines: Iterable[StatementLine]) -> None:
        for line in lines:
            self.add(line)


@dataclass(frozen=True, slots=True)
class TransferFacts:
    """What reconciliation needs of one transfer."""

    id: str
    merchant_id: str
    reference: str
    channel: str
    status: TransferStatus
    amount: int
    currency: str
    channel_cost: int


@dataclass(frozen=True, slots=True)
class Finding:
    """One disagreement found by matching (before it is stored as a discrepancy)."""

    kind: DiscrepancyKind
    reference: str
    transfer_id: str | None
    statement_amount: int | None
    paymux_amount: int | None
    statement_status: str | None
    paymux_status: str | None
    detail: str

    @property
    def needs_channel_query(self) -> bool:
        return self.kind is DiscrepancyKind.status_mismatch


def judge(lines: ReferenceLines, transfer: TransferFacts | None, channel: str) -> list[Finding]:
    """The discrepancies between a reference's statement lines and our transfer."""
    ref = lines.reference
    view = lines.channel_view
    if transfer is None or transfer.channel != channel:
        moved = lines.paid or lines.refunded or lines.fee
        return [
            Finding(
                DiscrepancyKind.missing_in_paymux,
                ref,
                None,
                moved,
                None,
                view,
                None,
                f"{channel} moved {moved} fen under {ref}, which Paymux never sent",
            )
        ]
    found: list[Finding] = []
    status = transfer.status

    def finding(kind: DiscrepancyKind, stmt: int | None, ours: int | None, detail: str) -> None:
        found.append(Finding(kind, ref, transfer.id, stmt, ours, view, status.value, detail))

    moved = lines.paid or lines.refunded
    if lines.currency != transfer.currency:
        finding(
            DiscrepancyKind.amount_mismatch,
            moved,
            transfer.amount,
            f"the channel moved {lines.currency}, the transfer is in {transfer.currency}",
        )
    elif moved and moved != transfer.amount:
        finding(
            DiscrepancyKind.amount_mismatch,
            moved,
            transfer.amount,
            f"the channel moved {moved} fen, the transfer is for {transfer.amount} fen",
        )
    if lines.paid and status in _NOT_PAID:
        finding(
            DiscrepancyKind.status_mismatch,
            lines.paid,
            transfer.amount,
            f"the channel paid it; Paymux holds it as {status.value}",
        )
    elif lines.refunded and status is not TransferStatus.returned:
        finding(
            DiscrepancyKind.status_mismatch,
            lines.refunded,
            transfer.amount,
            f"the channel returned it; Paymux holds it as {status.value}",
        )
    if (lines.paid or lines.fee) and lines.fee != transfer.channel_cost:
        finding(
            DiscrepancyKind.channel_fee_mismatch,
            lines.fee,
            transfer.channel_cost,
            f"the channel charged {lines.fee} fen; the cost schedule said "
            f"{transfer.channel_cost} fen",
        )
    return found


def missing_in_statement(transfer: TransferFacts, day: str) -> Finding:
    return Finding(
        DiscrepancyKind.missing_in_statement,
        transfer.reference,
        transfer.id,
        None,
        transfer.amount,
        None,
        transfer.status.value,
        f"Paymux completed it as {transfer.status.value} on {day}; "
        "the channel's statement of that day has no payment for it",
    )


HealDecision = Literal["apply", "agrees", "unknown", "critical"]


def heal_decision(current: TransferStatus, answer: Outcome) -> HealDecision:
    """What to do with a channel's query answer for a status mismatch.

    ``apply``: a move the state machine allows (processing -> succeeded/failed,
    succeeded -> returned); ``critical``: the channel's answer is a move it forbids (paid a
    transfer we released as failed; FAIL after SUCCESS); ``agrees``: the query agrees with
    Paymux, not with the file (stays open for a person); ``unknown``: no answer yet.
    """
    current = TransferStatus(current)
    if transition_path(current, answer):
        return "apply"
    if answer in (Outcome.PROCESSING, Outcome.NOT_FOUND, Outcome.REQUIRES_CONFIRMATION):
        return "unknown"
    same = {
        Outcome.SUCCEEDED: TransferStatus.succeeded,
        Outcome.FAILED: TransferStatus.failed,
        Outcome.RETURNED: TransferStatus.returned,
        Outcome.CANCELED: TransferStatus.canceled,
    }
    if same.get(answer) is current:
        return "agrees"
    if answer is Outcome.SUCCEEDED and current is TransferStatus.returned:
        return "agrees"  # paid, then returned: the query may lag the bounce
    return "critical"


# --- what is stored -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Judged:
    """A finding with the verdict of healing: its state, severity and evidence."""

    finding: Finding
    state: DiscrepancyState
    severity: Severity
    evidence: str | None = None  # JSON text: the channel's query answer, what was applied


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: str
    channel: str
    bill_date: str
    status: str  # completed | failed
    trigger: str  # cli | api | schedule
    statement_path: str | None
    statement_sha256: str | None
    summary: str  # JSON text
    error: str | None
    started_at: object  # datetime (aware UTC); typed loosely to keep domain free of I/O types
    finished_at: object | None


@dataclass(frozen=True, slots=True)
class Discrepancy:
    id: str
    channel: str
    bill_date: str
    kind: DiscrepancyKind
    reference: str
    transfer_id: str | None
    merchant_id: str | None
    state: DiscrepancyState
    severity: Severity
    statement_amount: int | None
    paymux_amount: int | None
    statement_status: str | None
    paymux_status: str | None
    detail: str
    evidence: str | None
    first_run_id: str
    last_run_id: str
    created_at: object
    updated_at: object
    resolved_at: object | None
    resolved_by: str | None
    resolution: str | None
