"""Top-up rows: all of their SQL (the credit itself is a journal entry, see ledger_repo)."""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict, cast

from sqlalchemy import select

from paymux.store.db import Database, WriteTx
from paymux.store.tables import topups


class TopupRow(TypedDict):
    id: str
    merchant_id: str
    idempotency_key: str
    request_fingerprint: str  # of the request body, to tell a replay from a reused key
    amount: int  # minor units
    currency: str
    description: str | None
    created_at: datetime


def insert(tx: WriteTx, row: TopupRow) -> None:
    tx.execute(topups.insert().values(**row))


async def by_idempotency_key(db: Database, merchant_id: str, key: str) -> TopupRow | None:
    stmt = select(topups).where(
        topups.c.merchant_id == merchant_id, topups.c.idempotency_key == key
    )
    async with db.read() as conn:
        found = (await conn.execute(stmt)).mappings().first()
    return None if found is None else cast(TopupRow, dict(found))
