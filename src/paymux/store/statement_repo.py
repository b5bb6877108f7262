"""SQL of merchant statements: a merchant's ``available`` postings of a day and before it,
and the fees its settlements of that day earned (read from the ledger, like the fee report)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from paymux.domain.ledger import AccountKind, EntryKind, house_account, merchant_available
from paymux.store.tables import journal_entries, postings

_J, _P = journal_entries.c, postings.c


@dataclass(frozen=True, slots=True)
class Movement:
    entry_id: str
    kind: str
    transfer_id: str | None
    topup_id: str | None
    created_at: datetime
    amount: int  # signed change of the available balance


@dataclass(frozen=True, slots=True)
class SettledFee:
    entry_id: str
    transfer_id: str | None
    created_at: datetime
    fee: int


async def available_before(
    conn: AsyncConnection, merchant_id: str, currency: str, at: datetime
) -> int:
    key = merchant_available(merchant_id, currency).key
    total = await conn.execute(
        select(func.coalesce(func.sum(_P.amount), 0))
        .select_from(postings.join(journal_entries, _J.id == _P.entry_id))
        .where(_P.account_key == key, _J.created_at < at)
    )
    return int(total.scalar() or 0)


async def available_movements(
    conn: AsyncConnection, merchant_id: str, currency: str, start: datetime, end: datetime
) -> list[Movement]:
    key = merchant_available(merchant_id, currency).key
    rows = await conn.execute(
        select(_J.id, _J.kind, _J.transfer_id, _J.topup_id, _J.created_at, _P.amount)
        .select_from(postings.join(journal_entries, _J.id == _P.entry_id))
        .where(_P.account_key == key, _J.created_at >= start, _J.created_at < end)
        .order_by(_J.created_at, _J.id)
    )
    return [Movement(r[0], r[1], r[2], r[3], r[4], int(r[5])) for r in rows.all()]


async def settled_fees(
    conn: AsyncConnection, merchant_id: str, currency: str, start: datetime, end: datetime
) -> list[SettledFee]:
    key = house_account(AccountKind.fee_revenue, currency).key
    rows = await conn.execute(
        select(_J.id, _J.transfer_id, _J.created_at, _P.amount)
        .select_from(postings.join(journal_entries, _J.id == _P.entry_id))
        .where(
            _P.account_key == key,
            _J.kind == EntryKind.settle.value,
            _J.merchant_id == merchant_id,
            _J.created_at >= start,
            _J.created_at < end,
        )
        .order_by(_J.created_at, _J.id)
    )
    return [SettledFee(r[0], r[1], r[2], int(r[3])) for r in rows.all()]
