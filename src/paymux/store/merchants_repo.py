"""Merchant rows: all of their SQL. The reads other aggregates need (existence) live here
too, so they need not import the merchant use cases."""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict, cast

from sqlalchemy import select

from paymux.store.db import Database, WriteTx
from paymux.store.tables import merchants


class MerchantRow(TypedDict):
    id: str
    name: str
    key_hash: str  # sha256 of the first key; api_keys holds every key
    key_hint: str
    active: bool
    created_at: datetime


def insert(tx: WriteTx, row: MerchantRow) -> None:
    tx.execute(merchants.insert().values(**row))


async def list_all(db: Database) -> list[MerchantRow]:
    """Every merchant, by id."""
    async with db.read() as conn:
        rows = (await conn.execute(select(merchants).order_by(merchants.c.id))).mappings()
        return [cast(MerchantRow, dict(r)) for r in rows]


async def exists(db: Database, merchant_id: str) -> bool:
    async with db.read() as conn:
        found = await conn.execute(select(merchants.c.id).where(merchants.c.id == merchant_id))
        return found.first() is not None


async def name_of(db: Database, merchant_id: str) -> str | None:
    async with db.read() as conn:
        found = await conn.execute(select(merchants.c.name).where(merchants.c.id == merchant_id))
        name = found.scalar_one_or_none()
    return None if name is None else str(name)
