"""Merchants and their secret keys (stored as SHA-256; shown once at creation)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any

from sqlalchemy import Connection, select

from paymux.domain.ids import new_id
from paymux.domain.ledger import merchant_available
from paymux.domain.money import SUPPORTED_CURRENCIES
from paymux.service.gateway import Gateway
from paymux.service.views import iso
from paymux.store.ledger_repo import ensure_accounts
from paymux.store.tables import merchants


def hash_key(key: str) -> str:
    # Keys are 256-bit random, so a fast hash is enough (no password stretching needed).
    return hashlib.sha256(key.encode()).hexdigest()


def merchant_view(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "merchant",
        "name": row["name"],
        "key_hint": row["key_hint"],
        "created_at": iso(row["created_at"]),
    }


async def create_merchant(gw: Gateway, name: str) -> tuple[dict[str, Any], str]:
    secret = "sk_" + secrets.token_urlsafe(32)
    now = gw.clock()
    row: dict[str, Any] = {
        "id": new_id("mer"),
        "name": name,
        "key_hash": hash_key(secret),
        "key_hint": secret[:7] + "…",
        "active": True,
        "created_at": now,
    }
    # Only `available` keeps a cached balance row; `held` is derived (see ledger_repo).
    refs = [merchant_available(row["id"], currency) for currency in sorted(SUPPORTED_CURRENCIES)]

    def write(conn: Connection) -> None:
        conn.execute(merchants.insert().values(**row))
        ensure_accounts(conn, refs)

    await gw.db.run_write(write)
    return row, secret


async def list_merchants(gw: Gateway) -> list[dict[str, Any]]:
    async with gw.db.read() as conn:
        rows = (await conn.execute(select(merchants).order_by(merchants.c.id))).mappings()
        return [dict(r) for r in rows]


async def merchant_exists(gw: Gateway, merchant_id: str) -> bool:
    async with gw.db.read() as conn:
        found = await conn.execute(select(merchants.c.id).where(merchants.c.id == merchant_id))
        return found.first() is not None


class MerchantAuth:
    """Secret key -> merchant id, with a short cache so the hot path skips the database."""

    def __init__(self, gw: Gateway, ttl_seconds: float = 30.0) -> None:
        self._gw = gw
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[str, float]] = {}

    async def authenticate(self, key: str) -> str | None:
        digest = hash_key(key)
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        async with self._gw.db.read() as conn:
            found = (
                await conn.execute(
                    select(merchants.c.id, merchants.c.key_hash, merchants.c.active).where(
                        merchants.c.key_hash == digest
                    )
                )
            ).first()
        if found is None or not found.active or not hmac.compare_digest(found.key_hash, digest):
            return None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (found.id, time.monotonic() + self._ttl)
        return str(found.id)
