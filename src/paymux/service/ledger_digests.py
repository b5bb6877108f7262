"""Sealing business days of the ledger (daily job) and verifying every sealed day.

Nothing here runs on the transfer path: the daily close seals the previous day, and
``paymux ledger check`` recomputes every stored digest from the journal.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import partial
from zoneinfo import ZoneInfo

from paymux.domain.ledger_digest import GENESIS, chain, leaf, merkle_root
from paymux.service.gateway import Gateway
from paymux.store import ledger_digest_repo as repo
from paymux.store.db import ReadTx
from paymux.store.ledger_digest_repo import StoredDigest


def _window(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=tz)
    return start, start + timedelta(days=1)


async def seal_days(gw: Gateway, *, through: date, start: date | None = None) -> list[StoredDigest]:
    """Seal every unsealed business day up to ``through`` (inclusive), in order.

    The first day is the one after the last sealed day, else ``start``, else the day of
    the journal's first entry.
    """
    tz = ZoneInfo(gw.settings.business_timezone)
    async with gw.db.read() as conn:
        stored = await repo.digests(conn)
        first = await repo.first_entry_at(conn)
    if stored:
        day = date.fromisoformat(stored[-1].day) + timedelta(days=1)
        previous = stored[-1].digest
    elif start is not None:
        day, previous = start, GENESIS
    elif first is not None:
        day, previous = first.astimezone(tz).date(), GENESIS
    else:
        return []
    sealed: list[StoredDigest] = []
    while day <= through:
        start, end = _window(day, tz)
        async with gw.db.read() as conn:
            entries = await repo.entries_between(conn, start, end)
        hashes = [(e.id, leaf(e)) for e in entries]
        root = merkle_root([h for _, h in hashes])
        digest = StoredDigest(
            day.isoformat(),
            len(hashes),
            root,
            previous,
            chain(day.isoformat(), len(hashes), root, previous),
        )
        await gw.db.run_write(
            partial(repo.store, digest=digest, entry_leaves=hashes, now=gw.clock())
        )
        sealed.append(digest)
        previous = digest.digest
        day += timedelta(days=1)
    return sealed


async def verify(conn: ReadTx, tz: ZoneInfo) -> list[str]:
    """Every sealed day recomputed from the journal; names the day and entry that changed."""
    problems: list[str] = []
    previous = GENESIS
    for digest in await repo.digests(conn):
        day = digest.day
        if digest.previous_digest != previous:
            problems.append(f"ledger digest of {day} does not chain to the previous day's")
        if chain(day, digest.entries, digest.merkle_root, digest.previous_digest) != digest.digest:
            problems.append(f"ledger digest of {day} was edited (it does not hash to itself)")
        previous = digest.digest
        start, end = _window(date.fromisoformat(day), tz)
        now = {e.id: leaf(e) for e in await repo.entries_between(conn, start, end)}
        sealed = await repo.leaves(conn, day)
        if (
            merkle_root([h for _, h in sealed]) != digest.merkle_root
            or len(sealed) != digest.entries
        ):
            problems.append(f"ledger digest of {day}: its stored leaves were edited")
        sealed_ids = {e for e, _ in sealed}
        for entry_id, stored_leaf in sealed:
            if entry_id not in now:
                problems.append(f"ledger day {day}: entry {entry_id} was deleted or moved")
            elif now[entry_id] != stored_leaf:
                problems.append(
                    f"ledger day {day}: entry {entry_id} or its postings were edited after the "
                    "day was sealed"
                )
        for entry_id in now:
            if entry_id not in sealed_ids:
                problems.append(f"ledger day {day}: entry {entry_id} was added after sealing")
    return problems


async def digest_of_day(gw: Gateway, day: date) -> StoredDigest | None:
    async with gw.db.read() as conn:
        return await repo.digest_for(conn, day.isoformat())
