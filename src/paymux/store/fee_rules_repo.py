"""Fee rules added through the admin API: all of their SQL. The config file's rules are
never stored; the rule's row id is its version."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import RowMapping, select

from paymux.domain.fees import FeeKind, FeeRule, FeeScheduleEntry
from paymux.store.db import Database, WriteTx
from paymux.store.tables import fee_rules


def insert(tx: WriteTx, entry: FeeScheduleEntry, now: datetime) -> int:
    """Store ``entry``; returns its version (the new row's id)."""
    result = tx.execute(
        fee_rules.insert().values(
            kind=entry.kind.value,
            merchant_id=entry.merchant_id,
            channel=entry.channel,
            payee_type=entry.payee_type,
            bps=str(entry.rule.bps),  # Decimal text: exact, never float
            fixed=entry.rule.fixed,
            minimum=entry.rule.minimum,
            maximum=entry.rule.maximum,
            effective_at=entry.effective_at,
            created_at=now,
        )
    )
    pk = result.inserted_primary_key
    assert pk is not None
    return int(pk[0])


async def load_all(db: Database) -> list[FeeScheduleEntry]:
    """Every stored rule, oldest version first."""
    async with db.read() as conn:
        rows = (await conn.execute(select(fee_rules).order_by(fee_rules.c.id))).mappings()
        return [_entry(r) for r in rows]


def _entry(row: RowMapping) -> FeeScheduleEntry:
    return FeeScheduleEntry(
        kind=FeeKind(row["kind"]),
        channel=row["channel"],
        payee_type=row["payee_type"],
        rule=FeeRule(
            bps=Decimal(row["bps"]),
            fixed=int(row["fixed"]),
            minimum=int(row["minimum"]),
            maximum=None if row["maximum"] is None else int(row["maximum"]),
        ),
        effective_at=row["effective_at"],
        merchant_id=row["merchant_id"],
        version=int(row["id"]),
    )
