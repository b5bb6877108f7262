"""Writes journal entries and keeps the cached merchant balances, in the caller's transaction.

Only merchant accounts (``available``, ``held``) carry a cached balance: they need one, to
refuse a hold that the balance cannot cover. The house and channel accounts are shared by
every transfer, so caching their balance would make one row every settlement must lock;
their balance is the sum of their postings, computed when read (reports, ledger check).

A merchant debit is a conditional UPDATE (``balance + change >= 0``) whose row count
decides, so two concurrent holds cannot both spend the same money: PostgreSQL locks the
row, SQLite has a single writer. The UPDATE runs after the inserts, just before commit, so
a busy merchant's row is locked for as short a time as possible.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import BigInteger, Connection, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from paymux.domain.ids import new_id
from paymux.domain.ledger import AccountKind, AccountRef, InsufficientFunds, JournalEntry
from paymux.store.tables import accounts, journal_entries, postings

CACHED = frozenset({AccountKind.merchant_available, AccountKind.merchant_held})
_CACHED_VALUES = frozenset(k.value for k in CACHED)


def ensure_accounts(conn: Connection, refs: Iterable[AccountRef]) -> None:
    """Create missing account rows (idempotent; rows are never deleted)."""
    rows = [
        {"key": r.key, "kind": r.kind.value, "owner": r.owner, "currency": r.currency, "balance": 0}
        for r in refs
    ]
    if not rows:
        return
    insert = sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert
    conn.execute(insert(accounts).on_conflict_do_nothing(index_elements=["key"]), rows)


def post(
    conn: Connection,
    entry: JournalEntry,
    *,
    now: datetime,
    merchant_id: str | None,
    transfer_id: str | None = None,
    topup_id: str | None = None,
) -> str:
    """Record ``entry`` and apply it to the cached balances. Raises InsufficientFunds (the
    caller's transaction then rolls back) when a merchant account would go negative."""
    entry_id = new_id("je")
    conn.execute(
        journal_entries.insert().values(
            id=entry_id,
            kind=entry.kind.value,
            merchant_id=merchant_id,
            transfer_id=transfer_id,
            topup_id=topup_id,
            currency=entry.currency,
            created_at=now,
        )
    )
    conn.execute(
        postings.insert(),
        [
            {"entry_id": entry_id, "account_key": p.account.key, "amount": p.amount}
            for p in entry.postings
        ],
    )
    # One UPDATE per cached account, in key order: concurrent entries then lock rows in the
    # same order and cannot deadlock (a multi-row UPDATE locks in scan order, which varies).
    cached = sorted(
        (p for p in entry.postings if p.account.kind in CACHED), key=lambda p: p.account.key
    )
    for p in cached:
        change = literal(p.amount, BigInteger)
        result = conn.execute(
            update(accounts)
            .where(accounts.c.key == p.account.key, accounts.c.balance + change >= 0)
            .values(balance=accounts.c.balance + change)
        )
        if result.rowcount != 1:
            raise InsufficientFunds(f"{p.account.key} cannot cover {-p.amount}")
    return entry_id


class LedgerRepo:
    """Read side of the ledger (async)."""

    @staticmethod
    async def balances(conn: AsyncConnection, keys: list[str]) -> dict[str, int]:
        """Balances of ``keys``: the cache for merchant accounts, the postings' sum for the
        rest (house and channel accounts carry no cached balance)."""
        cached = [k for k in keys if k.split(":", 1)[0] in _CACHED_VALUES]
        derived = [k for k in keys if k not in cached]
        found: dict[str, int] = {}
        if cached:
            rows = await conn.execute(
                select(accounts.c.key, accounts.c.balance).where(accounts.c.key.in_(cached))
            )
            found.update({k: int(b) for k, b in rows.all()})
        if derived:
            rows = await conn.execute(
                select(postings.c.account_key, func.sum(postings.c.amount))
                .where(postings.c.account_key.in_(derived))
                .group_by(postings.c.account_key)
            )
            found.update({k: int(v or 0) for k, v in rows.all()})
            found.update({k: 0 for k in derived if k not in found})
        return found

    @staticmethod
    async def derived_balances(conn: AsyncConnection) -> dict[str, int]:
        """Every account's balance as the sum of its postings (the journal's truth)."""
        rows = await conn.execute(
            select(postings.c.account_key, func.sum(postings.c.amount)).group_by(
                postings.c.account_key
            )
        )
        return {k: int(s or 0) for k, s in rows.all()}

    @staticmethod
    async def check(conn: AsyncConnection) -> list[str]:
        """Every break of the ledger's invariants on a live database (empty = sound)."""
        problems: list[str] = []
        unbalanced = await conn.execute(
            select(postings.c.entry_id, func.sum(postings.c.amount))
            .group_by(postings.c.entry_id)
            .having(func.sum(postings.c.amount) != 0)
        )
        problems += [f"entry {e} sums to {s}" for e, s in unbalanced.all()]
        orphans = await conn.execute(
            select(postings.c.entry_id).group_by(postings.c.entry_id).having(func.count() < 2)
        )
        problems += [f"entry {e} has a single posting" for (e,) in orphans.all()]
        replay = await LedgerRepo.derived_balances(conn)
        cached = await conn.execute(
            select(accounts.c.key, accounts.c.kind, accounts.c.balance).where(
                accounts.c.kind.in_(sorted(_CACHED_VALUES))
            )
        )
        for key, _kind, balance in cached.all():
            expected = replay.get(key, 0)
            if int(balance) != expected:
                problems.append(f"account {key} balance {balance} != journal replay {expected}")
            if int(balance) < 0:
                problems.append(f"account {key} is negative: {balance}")
        for key, total in replay.items():
            if key.split(":", 1)[0] in _CACHED_VALUES and total < 0:
                problems.append(f"account {key} replays negative: {total}")
        if sum(replay.values()) != 0:
            problems.append(f"postings sum to {sum(replay.values())}, not 0")
        return problems
