"""Writes journal entries and keeps the cached balances, inside the caller's transaction.

Merchant accounts may never go negative: a debit is a conditional UPDATE
(``balance >= amount``) whose row count decides, so two concurrent holds cannot both spend
the same money on PostgreSQL (row lock) or SQLite (single writer). Accounts are touched in
key order so concurrent entries lock rows in one order and cannot deadlock.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from paymux.domain.ids import new_id
from paymux.domain.ledger import AccountKind, AccountRef, InsufficientFunds, JournalEntry
from paymux.store.tables import accounts, journal_entries, postings

_GUARDED = {AccountKind.merchant_available, AccountKind.merchant_held}


def _insert_ignore(conn: AsyncConnection):  # type: ignore[no-untyped-def]
    return sqlite.insert(accounts) if conn.dialect.name == "sqlite" else postgresql.insert(accounts)


class LedgerRepo:
    @staticmethod
    async def ensure_accounts(conn: AsyncConnection, refs: list[AccountRef]) -> None:
        """Create missing account rows (idempotent; rows are never deleted)."""
        stmt = _insert_ignore(conn).on_conflict_do_nothing(index_elements=["key"])
        await conn.execute(
            stmt,
            [
                {
                    "key": r.key,
                    "kind": r.kind.value,
                    "owner": r.owner,
                    "currency": r.currency,
                    "balance": 0,
                }
                for r in refs
            ],
        )

    async def post(
        self,
        conn: AsyncConnection,
        entry: JournalEntry,
        *,
        now: datetime,
        merchant_id: str | None,
        transfer_id: str | None = None,
        topup_id: str | None = None,
    ) -> str:
        """Record ``entry`` and apply it to balances. Raises InsufficientFunds (the caller
        rolls back) when a merchant account would go negative."""
        entry_id = new_id("je")
        ordered = sorted(entry.postings, key=lambda p: p.account.key)
        for posting in ordered:
            ref = posting.account
            stmt = update(accounts).where(accounts.c.key == ref.key)
            if posting.amount < 0 and ref.kind in _GUARDED:
                stmt = stmt.where(accounts.c.balance >= -posting.amount)
            stmt = stmt.values(balance=accounts.c.balance + posting.amount)
            if (await conn.execute(stmt)).rowcount == 1:
                continue
            if posting.amount < 0 and ref.kind in _GUARDED:
                raise InsufficientFunds(f"{ref.kind.value} cannot cover {-posting.amount}")
            # First use of a house or channel account: create it, then apply.
            await self.ensure_accounts(conn, [ref])
            await conn.execute(stmt)
        await conn.execute(
            journal_entries.insert().values(
                id=entry_id,
                kind=entry.kind.value,
                merchant_id=merchant_id,
                transfer_id=transfer_id,
                topup_id=topup_id,
                currency=entry.postings[0].account.currency,
                created_at=now,
            )
        )
        await conn.execute(
            postings.insert(),
            [
                {"entry_id": entry_id, "account_key": p.account.key, "amount": p.amount}
                for p in ordered
            ],
        )
        return entry_id

    @staticmethod
    async def balances(conn: AsyncConnection, keys: list[str]) -> dict[str, int]:
        rows = await conn.execute(
            select(accounts.c.key, accounts.c.balance).where(accounts.c.key.in_(keys))
        )
        return {k: int(b) for k, b in rows.all()}

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
        replay = dict(
            (
                await conn.execute(
                    select(postings.c.account_key, func.sum(postings.c.amount)).group_by(
                        postings.c.account_key
                    )
                )
            ).all()
        )
        for key, kind, balance in (
            await conn.execute(select(accounts.c.key, accounts.c.kind, accounts.c.balance))
        ).all():
            expected = int(replay.get(key) or 0)
            if int(balance) != expected:
                problems.append(f"account {key} balance {balance} != journal replay {expected}")
            if kind in {k.value for k in _GUARDED} and int(balance) < 0:
                problems.append(f"account {key} is negative: {balance}")
        total = (await conn.execute(select(func.coalesce(func.sum(postings.c.amount), 0)))).scalar()
        if int(total or 0) != 0:
            problems.append(f"postings sum to {total}, not 0")
        return problems
