"""SQL of ledger digests: a day's entries with their postings, and the stored digests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from paymux.domain.ledger_digest import EntryFacts
from paymux.store.reconciliation_tables import ledger_digest_leaves, ledger_digests
from paymux.store.tables import journal_entries, postings

_J = journal_entries.c


@dataclass(frozen=True, slots=True)
class StoredDigest:
    day: str
    entries: int
    merkle_root: str
    previous_digest: str
    digest: str


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


async def entries_between(
    conn: AsyncConnection, start: datetime, end: datetime
) -> list[EntryFacts]:
    """Every entry created in [start, end), in (created_at, id) order, with its postings."""
    rows = (
        await conn.execute(
            select(
                _J.id, _J.kind, _J.merchant_id, _J.transfer_id, _J.topup_id, _J.currency,
                _J.created_at,
            )
            .where(_J.created_at >= start, _J.created_at < end)
            .order_by(_J.created_at, _J.id)
        )
    ).all()  # fmt: skip
    ids = [r[0] for r in rows]
    by_entry: dict[str, list[tuple[str, int]]] = {i: [] for i in ids}
    for begin in range(0, len(ids), 500):
        chunk = ids[begin : begin + 500]
        found = await conn.execute(
            select(postings.c.entry_id, postings.c.account_key, postings.c.amount).where(
                postings.c.entry_id.in_(chunk)
            )
        )
        for entry_id, key, amount in found.all():
            by_entry[entry_id].append((key, int(amount)))
    return [
        EntryFacts(r[0], r[1], r[2], r[3], r[4], r[5], _iso(r[6]), tuple(by_entry[r[0]]))
        for r in rows
    ]


async def first_entry_at(conn: AsyncConnection) -> datetime | None:
    value: Any = (await conn.execute(select(func.min(_J.created_at)))).scalar()
    return value if value is None or isinstance(value, datetime) else None


async def digests(conn: AsyncConnection) -> list[StoredDigest]:
    rows = await conn.execute(select(ledger_digests).order_by(ledger_digests.c.day))
    return [
        StoredDigest(r["day"], r["entries"], r["merkle_root"], r["previous_digest"], r["digest"])
        for r in rows.mappings()
    ]


async def digest_for(conn: AsyncConnection, day: str) -> StoredDigest | None:
    rows = await conn.execute(select(ledger_digests).where(ledger_digests.c.day == day))
    r = rows.mappings().first()
    if r is None:
        return None
    return StoredDigest(r["day"], r["entries"], r["merkle_root"], r["previous_digest"], r["digest"])


async def leaves(conn: AsyncConnection, day: str) -> list[tuple[str, str]]:
    rows = await conn.execute(
        select(ledger_digest_leaves.c.entry_id, ledger_digest_leaves.c.leaf)
        .where(ledger_digest_leaves.c.day == day)
        .order_by(ledger_digest_leaves.c.position)
    )
    return [(e, h) for e, h in rows.all()]


def store(
    conn: Connection,
    *,
    digest: StoredDigest,
    entry_leaves: Sequence[tuple[str, str]],
    now: datetime,
) -> None:
    conn.execute(delete(ledger_digest_leaves).where(ledger_digest_leaves.c.day == digest.day))
    conn.execute(
        insert(ledger_digests).values(
            day=digest.day,
            entries=digest.entries,
            merkle_root=digest.merkle_root,
            previous_digest=digest.previous_digest,
            digest=digest.digest,
            computed_at=now,
        )
    )
    if entry_leaves:
        conn.execute(
            insert(ledger_digest_leaves),
            [
                {"day": digest.day, "position": i, "entry_id": e, "leaf": h}
                for i, (e, h) in enumerate(entry_leaves)
            ],
        )
