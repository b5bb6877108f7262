"""A merchant's balance transactions: the journal entries that touched their accounts, each
with its effect on them (a read of the journal; ledger_repo writes it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, select

from paymux.store.db import Database
from paymux.store.tables import journal_entries, postings


@dataclass(frozen=True)
class BalanceTransaction:
    entry_id: str
    kind: str  # the journal entry's kind
    currency: str
    transfer_id: str | None
    topup_id: str | None
    created_at: datetime
    available_change: int  # minor units, signed
    held_change: int


async def page(
    db: Database, merchant_id: str, *, limit: int, starting_after: str | None
) -> tuple[list[BalanceTransaction], bool]:
    """Up to ``limit`` of the merchant's entries, newest first, older than ``starting_after``
    when given; and whether there are more."""
    stmt = (
        select(journal_entries)
        .where(journal_entries.c.merchant_id == merchant_id)
        .order_by(journal_entries.c.id.desc())
        .limit(limit + 1)
    )
    if starting_after:
        stmt = stmt.where(journal_entries.c.id < starting_after)
    async with db.read() as conn:
        entries = list((await conn.execute(stmt)).mappings())
        page = entries[:limit]
        effects: dict[str, dict[str, int]] = {e["id"]: {} for e in page}
        if page:
            rows = await conn.execute(
                select(postings.c.entry_id, postings.c.account_key, postings.c.amount).where(
                    and_(
                        postings.c.entry_id.in_(list(effects)),
                        postings.c.account_key.like(f"merchant_%:{merchant_id}:%"),
                    )
                )
            )
            for entry_id, key, amount in rows.all():
                effects[entry_id][key.split(":", 1)[0]] = int(amount)
    found = [
        BalanceTransaction(
            entry_id=e["id"],
            kind=e["kind"],
            currency=e["currency"],
            transfer_id=e["transfer_id"],
            topup_id=e["topup_id"],
            created_at=e["created_at"],
            available_change=effects[e["id"]].get("merchant_available", 0),
            held_change=effects[e["id"]].get("merchant_held", 0),
        )
        for e in page
    ]
    return found, len(entries) > limit
