"""Bulk-load N succeeded transfers for one merchant, fast, to show how cost grows with data.

Each transfer gets its hold journal entry (two postings); one aggregate settle entry then
posts all of them, so the journal stays balanced and the cached balances equal its replay
(`paymux ledger check` holds). PostgreSQL uses COPY; SQLite one executemany transaction.
The merchant's available balance must already cover N * (amount + fee).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import make_url

from paymux.domain.ids import channel_reference, new_id
from paymux.domain.ledger import AccountRef, hold_entry, settle_entry
from paymux.progress import progress

AMOUNT, FEE, CURRENCY, CHANNEL = 100, 1, "CNY", "alipay"
_BATCH = 50_000

TRANSFER_COLUMNS = [
    "id",
    "merchant_id",
    "idempotency_key",
    "request_fingerprint",
    "status",
    "amount",
    "currency",
    "fee",
    "channel_cost",
    "price_version",
    "cost_version",
    "payee_type",
    "payee_account",
    "payee_name",
    "channel",
    "channel_reference",
    "channel_order_id",
    "failure_code",
    "failure_message",
    "description",
    "metadata",
    "created_at",
    "updated_at",
    "completed_at",
    "next_sync_at",
    "sync_attempts",
]


def _rows(merchant_id: str, n: int, start: int) -> Iterator[tuple[tuple[Any, ...], ...]]:
    """(transfer, entry, posting, posting) per transfer, oldest first over the last 30 days."""
    now = datetime.now(UTC)
    hold = hold_entry(merchant_id, AMOUNT, FEE, CURRENCY)
    fp = "0" * 64
    for i in range(start, start + n):
        at = now - timedelta(seconds=(n - i) * 2.5)
        tid = new_id("tr")
        eid = new_id("je")
        transfer = (
            tid, merchant_id, f"prefill-{i}", fp, "succeeded", AMOUNT, CURRENCY, FEE, 0,
            0, 0, "alipay_account", f"user{i}@example.com", "Prefill", CHANNEL,
            channel_reference(tid), f"2025{i:020d}", None, None, "prefill", None,
            at, at, at, None, 0,
        )  # fmt: skip
        entry = (eid, "hold", merchant_id, tid, None, CURRENCY, at)
        yield transfer, entry, *((eid, p.account.key, p.amount) for p in hold.postings)


def settle_all(merchant_id: str, n: int) -> list[tuple[str, int]]:
    entry = settle_entry(merchant_id, CHANNEL, AMOUNT * n, FEE * n, 0, CURRENCY)
    return [(p.account.key, p.amount) for p in entry.postings]


def balance_moves(merchant_id: str, n: int) -> dict[str, int]:
    moves: dict[str, int] = {}
    for p in hold_entry(merchant_id, AMOUNT * n, FEE * n, CURRENCY).postings:
        moves[p.account.key] = moves.get(p.account.key, 0) + p.amount
    for key, amount in settle_all(merchant_id, n):
        moves[key] = moves.get(key, 0) + amount
    return moves


def _account_kind(key: str) -> tuple[str, str | None, str]:
    ref = AccountRef.from_key(key)
    return ref.kind.value, ref.owner, ref.currency


def prefill_sqlite(path: str, merchant_id: str, n: int) -> None:
    conn = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=60000")
        conn.execute("BEGIN IMMEDIATE")
        marks = ",".join("?" * len(TRANSFER_COLUMNS))
        insert_t = f"INSERT INTO transfers ({','.join(TRANSFER_COLUMNS)}) VALUES ({marks})"
        insert_e = (
            "INSERT INTO journal_entries (id, kind, merchant_id, transfer_id, topup_id,"
            " currency, created_at) VALUES (?,?,?,?,?,?,?)"
        )
        insert_p = "INSERT INTO postings (entry_id, account_key, amount) VALUES (?,?,?)"
        done = 0
        with progress("prefill", total=n) as bar:
            while done < n:
                batch = list(_rows(merchant_id, min(_BATCH, n - done), done))
                conn.executemany(insert_t, [_sqlite_ts(b[0]) for b in batch])
                conn.executemany(insert_e, [_sqlite_ts(b[1]) for b in batch])
                conn.executemany(insert_p, [p for b in batch for p in b[2:]])
                done += len(batch)
                bar.advance(len(batch))
        eid = new_id("je")
        conn.execute(insert_e, _sqlite_ts((eid, "settle", merchant_id, None, None, CURRENCY,
                                           datetime.now(UTC))))  # fmt: skip
        conn.executemany(insert_p, [(eid, k, a) for k, a in settle_all(merchant_id, n)])
        for key, amount in balance_moves(merchant_id, n).items():
            kind, owner, currency = _account_kind(key)
            conn.execute(
                "INSERT OR IGNORE INTO accounts (key, kind, owner, currency, balance)"
                " VALUES (?,?,?,?,0)",
                (key, kind, owner, currency),
            )
            conn.execute("UPDATE accounts SET balance = balance + ? WHERE key = ?", (amount, key))
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
    finally:
        conn.close()


def _sqlite_ts(row: tuple[Any, ...]) -> tuple[Any, ...]:
    # SQLAlchemy's SQLite DateTime stores naive UTC as "YYYY-MM-DD HH:MM:SS.ffffff".
    return tuple(
        v.astimezone(UTC).replace(tzinfo=None).isoformat(" ") if isinstance(v, datetime) else v
        for v in row
    )


async def prefill_postgres(url: str, merchant_id: str, n: int) -> None:
    import asyncpg  # type: ignore[import-untyped]  # noqa: PLC0415

    parsed = make_url(url)
    conn = await asyncpg.connect(
        user=parsed.username, password=parsed.password, host=parsed.host,
        port=parsed.port or 5432, database=parsed.database,
    )  # fmt: skip
    try:
        async with conn.transaction():
            done = 0
            with progress("prefill", total=n) as bar:
                while done < n:
                    batch = list(_rows(merchant_id, min(_BATCH, n - done), done))
                    await conn.copy_records_to_table(
                        "transfers", records=[b[0] for b in batch], columns=TRANSFER_COLUMNS
                    )
                    await conn.copy_records_to_table(
                        "journal_entries",
                        records=[b[1] for b in batch],
                        columns=["id", "kind", "merchant_id", "transfer_id", "topup_id",
                                 "currency", "created_at"],
                    )  # fmt: skip
                    await conn.copy_records_to_table(
                        "postings",
                        records=[p for b in batch for p in b[2:]],
                        columns=["entry_id", "account_key", "amount"],
                    )
                    done += len(batch)
                    bar.advance(len(batch))
            eid = new_id("je")
            await conn.execute(
                "INSERT INTO journal_entries (id, kind, merchant_id, currency, created_at)"
                " VALUES ($1, 'settle', $2, $3, $4)",
                eid, merchant_id, CURRENCY, datetime.now(UTC),
            )  # fmt: skip
            await conn.executemany(
                "INSERT INTO postings (entry_id, account_key, amount) VALUES ($1, $2, $3)",
                [(eid, k, a) for k, a in settle_all(merchant_id, n)],
            )
            for key, amount in balance_moves(merchant_id, n).items():
                kind, owner, currency = _account_kind(key)
                await conn.execute(
                    "INSERT INTO accounts (key, kind, owner, currency, balance)"
                    " VALUES ($1, $2, $3, $4, 0) ON CONFLICT (key) DO NOTHING",
                    key, kind, owner, currency,
                )  # fmt: skip
                await conn.execute(
                    "UPDATE accounts SET balance = balance + $1 WHERE key = $2", amount, key
                )
        # VACUUM too: otherwise autovacuum processes the new rows during the measurement.
        await conn.execute("VACUUM (ANALYZE)")
    finally:
        await conn.close()


def prefill(database_url: str, merchant_id: str, n: int) -> None:
    if make_url(database_url).get_backend_name() == "sqlite":
        prefill_sqlite(make_url(database_url).database or "", merchant_id, n)
    else:
        asyncio.run(prefill_postgres(database_url, merchant_id, n))


def needed_funds(n: int) -> int:
    return n * (AMOUNT + FEE)
