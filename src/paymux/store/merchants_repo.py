"""Merchant rows: the reads other aggregates need (existence) without importing the
merchant use cases."""

from __future__ import annotations

from sqlalchemy import select

from paymux.store.db import Database
from paymux.store.tables import merchants


async def exists(db: Database, merchant_id: str) -> bool:
    async with db.read() as conn:
        found = await conn.execute(select(merchants.c.id).where(merchants.c.id == merchant_id))
        return found.first() is not None
