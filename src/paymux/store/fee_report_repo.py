"""The fee report's SQL: sums of the ``settle`` journal entries created in a window, read
from their postings and joined with their transfers only for the channel and payee type.

``fee_revenue`` postings are the fee, ``channel_cost`` the cost, and the ``merchant_held``
posting is -(amount + fee), so the volume is that negated, less the fee.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, select

from paymux.domain.ledger import AccountKind, EntryKind
from paymux.store.db import Database
from paymux.store.tables import journal_entries, postings, transfers

# What a line may be grouped by (besides the day), by the name the line gives it.
GROUP_COLUMNS: Mapping[str, ColumnElement[Any]] = {
    "merchant_id": journal_entries.c.merchant_id,
    "channel": transfers.c.channel,
    "payee_type": transfers.c.payee_type,
}

_FEE_PREFIX = f"{AccountKind.fee_revenue.value}:"
_COST_PREFIX = f"{AccountKind.channel_cost.value}:"
_HELD_PREFIX = f"{AccountKind.merchant_held.value}:"


@dataclass(frozen=True)
class Window:
    """Entries created in [start, end) (UTC); ``label`` is added to each of its lines'
    groups (e.g. its business day)."""

    start: datetime
    end: datetime
    label: Mapping[str, str]


@dataclass(frozen=True)
class FeeReportLine:
    """Sums for one group (``group`` maps field names to values) in one currency."""

    group: Mapping[str, str]
    currency: str
    transfer_count: int
    volume: int  # sum of transfer amounts, minor units
    fees: int  # what merchants paid Paymux
    channel_cost: int  # what the channels charged Paymux

    @property
    def margin(self) -> int:
        return self.fees - self.channel_cost


async def settled_lines(
    db: Database,
    windows: Sequence[Window],
    group_by: Sequence[str],
    merchant_id: str | None,
) -> list[FeeReportLine]:
    """One line per window, currency and group of ``group_by`` (GROUP_COLUMNS names), for
    one merchant or (None) every merchant; all windows read in one transaction."""
    lines: list[FeeReportLine] = []
    async with db.read() as conn:
        for window in windows:
            stmt = _statement(window, group_by, merchant_id)
            for row in (await conn.execute(stmt)).mappings():
                # int(): PostgreSQL sums bigints as numeric (exact Decimal), SQLite as int.
                fees, held = int(row["fees"]), int(row["held"])
                lines.append(
                    FeeReportLine(
                        group={**window.label, **{name: str(row[name]) for name in group_by}},
                        currency=row["currency"],
                        transfer_count=int(row["transfer_count"]),
                        volume=held - fees,
                        fees=fees,
                        channel_cost=int(row["channel_cost"]),
                    )
                )
    return lines


def _posted(prefix: str, sign: int) -> ColumnElement[Any]:
    """Sum of the postings to accounts whose key starts with ``prefix``, times ``sign``."""
    amount = postings.c.amount if sign > 0 else -postings.c.amount
    matches = postings.c.account_key.startswith(prefix, autoescape=True)
    return func.coalesce(func.sum(case((matches, amount), else_=0)), 0)


def _statement(window: Window, group_by: Sequence[str], merchant_id: str | None) -> Select[Any]:
    je = journal_entries.c
    groups = [GROUP_COLUMNS[name] for name in group_by]
    stmt = (
        select(
            je.currency,
            *(GROUP_COLUMNS[name].label(name) for name in group_by),
            func.count(func.distinct(je.id)).label("transfer_count"),
            # held posting is -(amount + fee): negated, then less the fee, it is the amount
            _posted(_HELD_PREFIX, -1).label("held"),
            _posted(_FEE_PREFIX, +1).label("fees"),
            _posted(_COST_PREFIX, -1).label("channel_cost"),
        )
        .select_from(
            journal_entries.join(transfers, transfers.c.id == je.transfer_id).join(
                postings, postings.c.entry_id == je.id
            )
        )
        .where(
            je.kind == EntryKind.settle.value,
            je.created_at >= window.start,
            je.created_at < window.end,
        )
        .group_by(je.currency, *groups)
    )
    if merchant_id is not None:
        stmt = stmt.where(je.merchant_id == merchant_id)
    return stmt
