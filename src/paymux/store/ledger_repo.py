"""Writes journal entries and keeps the cached merchant balances, in the caller's transaction.

Only a merchant's ``available`` account carries a cached balance: it needs one, to refuse a
hold that the balance cannot cover. Every other balance is derived when read:

- ``held`` is the sum of ``amount + fee`` of the merchant's transfers still in flight
  (pending, processing, requires_confirmation), which is exactly what its postings add
  up to; the ledger check
  proves the two agree. Not caching it means a settlement locks no balance row at all.
- the house and channel accounts are shared by every transfer, so a cached balance would be
  one row that every settlement must lock; their balance is the sum of their postings.

A merchant debit is a conditional UPDATE (``balance + change >= 0``) whose row count
decides, so two concurrent holds cannot both spend the same money: PostgreSQL locks the
row, SQLite has a single writer. The UPDATE runs after the inserts, just before commit, so
a busy merchant's row is locked for as short a time as possible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy import BigInteger, Connection, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from paymux.domain.ids import new_id
from paymux.domain.ledger import AccountKind, AccountRef, InsufficientFunds, JournalEntry
from paymux.domain.states import IN_FLIGHT
from paymux.store._sqlite_driver import Statement
from paymux.store.tables import accounts, journal_entries, postings, transfers

CACHED = frozenset({AccountKind.merchant_available})
_CACHED_VALUES = frozenset(k.value for k in CACHED)

# Built once: the hot path then only binds parameters to cached compiled statements.
_INSERT_ENTRY = Statement(journal_entries.insert())
_INSERT_POSTINGS = Statement(postings.insert(), columns=("entry_id", "account_key", "amount"))
_APPLY_CHANGE = Statement(
    update(accounts)
    .where(
        accounts.c.key == bindparam("k"),
        accounts.c.balance + bindparam("d", type_=BigInteger) >= 0,
    )
    .values(balance=accounts.c.balance + bindparam("d", type_=BigInteger))
)


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
    entry_id: str | None = None,
    fast: bool = True,
) -> str:
    """Record ``entry`` and apply it to the cached balances. Raises InsufficientFunds (the
    caller's transaction then rolls back) when a merchant account would go negative.

    ``fast=False`` runs every statement through SQLAlchemy even on SQLite (the store tests
    compare the two paths' rows)."""
    entry_id = entry_id or new_id("je")
    _INSERT_ENTRY.run(
        conn,
        {
            "id": entry_id,
            "kind": entry.kind.value,
            "merchant_id": merchant_id,
            "transfer_id": transfer_id,
            "topup_id": topup_id,
            "currency": entry.currency,
            "created_at": now,
        },
        fast=fast,
    )
    _INSERT_POSTINGS.run_many(
        conn,
        [
            {"entry_id": entry_id, "account_key": p.account.key, "amount": p.amount}
            for p in entry.postings
        ],
        fast=fast,
    )
    # One UPDATE per cached account, in key order: concurrent entries then lock rows in the
    # same order and cannot deadlock (a multi-row UPDATE locks in scan order, which varies).
    cached = sorted(
        (p for p in entry.postings if p.account.kind in CACHED), key=lambda p: p.account.key
    )
    for p in cached:
        if _APPLY_CHANGE.run(conn, {"k": p.account.key, "d": p.amount}, fast=fast) != 1:
            raise InsufficientFunds(f"{p.account.key} cannot cover {-p.amount}")
    return entry_id


class LedgerRepo:
    CHECK_STEPS = 5  # phases of check(), for a progress display

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
    async def held_by_merchant(
        conn: AsyncConnection, merchant_id: str | None = None
    ) -> dict[tuple[str, str], int]:
        """(merchant, currency) -> amount + fee of its transfers still in flight."""
        t = transfers.c
        stmt = (
            select(t.merchant_id, t.currency, func.sum(t.amount + t.fee))
            .where(t.status.in_(sorted(s.value for s in IN_FLIGHT)))
            .group_by(t.merchant_id, t.currency)
        )
        if merchant_id is not None:
            stmt = stmt.where(t.merchant_id == merchant_id)
        rows = await conn.execute(stmt)
        return {(m, c): int(v or 0) for m, c, v in rows.all()}

    @staticmethod
    async def check(conn: AsyncConnection, step: Callable[[str], None] | None = None) -> list[str]:
        """Every break of the ledger's invariants on a live database (empty = sound).

        ``step`` is told as each of the CHECK_STEPS phases ends (for a progress display).
        """
        done = step or (lambda _note: None)
        problems: list[str] = []
        unbalanced = await conn.execute(
            select(postings.c.entry_id, func.sum(postings.c.amount))
            .group_by(postings.c.entry_id)
            .having(func.sum(postings.c.amount) != 0)
        )
        problems += [f"entry {e} sums to {s}" for e, s in unbalanced.all()]
        done("every entry sums to zero")
        orphans = await conn.execute(
            select(postings.c.entry_id).group_by(postings.c.entry_id).having(func.count() < 2)
        )
        problems += [f"entry {e} has a single posting" for (e,) in orphans.all()]
        done("no single-posting entry")
        replay = await LedgerRepo.derived_balances(conn)
        done("journal replayed")
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
        done("cached balances compared")
        in_flight = await LedgerRepo.held_by_merchant(conn)
        for key, total in replay.items():
            kind, _, rest = key.partition(":")
            if kind in _CACHED_VALUES and total < 0:
                problems.append(f"account {key} replays negative: {total}")
            if kind == AccountKind.merchant_held.value:
                owner, _, currency = rest.rpartition(":")
                holds = in_flight.get((owner, currency), 0)
                if total != holds:
                    problems.append(
                        f"account {key} replays {total} but transfers in flight hold {holds}"
                    )
        for (owner, currency), holds in in_flight.items():
            key = f"{AccountKind.merchant_held.value}:{owner}:{currency}"
            if key not in replay and holds:
                problems.append(f"account {key} has no postings but transfers hold {holds}")
        if sum(replay.values()) != 0:
            problems.append(f"postings sum to {sum(replay.values())}, not 0")
        done("holds match transfers in flight")
        return problems
