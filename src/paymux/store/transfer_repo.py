"""The transfer aggregate's one home: every statement on transfers, their ledger entries and
their outbox events.

A transfer and what it implies are always written together, in one transaction:

- :meth:`TransferRepo.create_pending`: the pending transfer, its hold entry (the guarded
  debit of the merchant's available balance) and nothing else. The database's unique
  (merchant, idempotency key) is the final authority: a second insert with the same key
  raises :class:`~paymux.store.errors.UniqueViolation`.
- :meth:`TransferRepo.move`: a status move planned by the service (``plan``: the current
  transfer -> the :class:`Step` s to take), each step's guarded UPDATE, its journal entry
  and its outbox event. A stale guess of the current state is detected by the guard and
  planned again from a locked read.
- the sync loop's claim/requeue/park, the merchant's cancel of a queued batch item, batch
  acceptance (the batch, its items and every all-or-nothing hold at once), and the reads.

Services speak :class:`~paymux.domain.transfers.Transfer`; no SQL about transfers lives
outside the store.

Per-database fast paths are private details, one per database:

- SQLite: every write statement of this module runs on the bare ``sqlite3`` connection
  (``_sqlite_driver.Statement``) inside :meth:`TransferRepo._write`, the one place all of
  this repository's transactions pass through on their way to SQLite's writer thread (where
  ``Database.run_write`` group-commits them, store/group_commit.py). Each write is a
  ``Callable[[Connection], T]``, so it runs unchanged in its own savepoint there.
- PostgreSQL: the create is one data-modifying CTE statement in autocommit
  (``_pg_pending``), so the merchant's balance row is locked only for that statement, and
  so is a status move that the ledger cannot refuse (``_pg_move``: the guarded UPDATE, its
  entries, postings, credit and events); both run on the bare asyncpg connection
  (``_pg_driver``), as does the read of one transfer.
- SQLite: the read of one transfer runs on the event loop's own read-only connection
  (``Database.inline_reader``), without a thread hop.

``TransferRepo(db, fast=False)`` runs everything through plain SQLAlchemy instead; the store
tests run the same operations both ways and compare every row written.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Connection, and_, bindparam, or_, select, update
from sqlalchemy.sql import Select

from paymux.domain.batches import Batch, BatchItem
from paymux.domain.ids import new_id
from paymux.domain.ledger import JournalEntry
from paymux.domain.states import TransferStatus
from paymux.domain.transfers import MUTABLE_FIELDS, Transfer
from paymux.store import _pg_move, _pg_pending, batch_repo
from paymux.store import ledger_repo as ledger
from paymux.store._pg_driver import PgStatement
from paymux.store._sqlite_driver import Query, Statement
from paymux.store.db import Database
from paymux.store.errors import StoreError
from paymux.store.outbox_repo import insert_event
from paymux.store.tables import transfers
from paymux.store.transfer_rows import row_of, transfer_from_row

T = TypeVar("T")
_t = transfers.c

_INSERT = Statement(transfers.insert())
_GET = select(transfers).where(_t.id == bindparam("id"))
_GET_OF = _GET.where(_t.merchant_id == bindparam("merchant_id"))
_PG_GET = {False: PgStatement(_GET), True: PgStatement(_GET_OF)}  # by "of a merchant"
_SQLITE_GET = {False: Query(_GET), True: Query(_GET_OF)}
_MOVE = Statement(
    update(transfers)
    .where(_t.id == bindparam("_id"), _t.status == bindparam("_from"))
    .values({c: bindparam(c) for c in MUTABLE_FIELDS})
)
_PARK = Statement(
    update(transfers)
    .where(_t.id == bindparam("_id"), _t.status == TransferStatus.pending.value)
    .values(next_sync_at=bindparam("due"), sync_attempts=bindparam("attempts"))
)
_CLAIM = Statement(
    update(transfers)
    .where(
        _t.id == bindparam("_id"),
        _t.status == bindparam("_status"),
        _t.next_sync_at == bindparam("_previous"),
    )
    .values(next_sync_at=bindparam("until"), sync_attempts=_t.sync_attempts + 1)
)
_CLAIM_FIRST = Statement(
    update(transfers)
    .where(_t.id == bindparam("_id"), _t.status == bindparam("_status"), _t.next_sync_at.is_(None))
    .values(next_sync_at=bindparam("until"), sync_attempts=_t.sync_attempts + 1)
)


class NoSuchTransfer(StoreError):
    """The transfer to move does not exist."""


@dataclass(frozen=True)
class Event:
    """An outbox event a step writes: its type and the object it reports (as shown)."""

    type: str
    obj: dict[str, Any]


@dataclass(frozen=True)
class Step:
    """One move along the state machine: the transfer after it, its entry, its event."""

    after: Transfer
    entry: JournalEntry | None
    event: Event


# The service's decision: given the transfer as it is, the steps to take (empty: none).
Plan = Callable[[Transfer], Sequence[Step]]


@dataclass(frozen=True)
class Moved:
    transfer: Transfer  # as it is after the steps (or as it was, when none were taken)
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class TransferFilter:
    merchant_id: str | None
    status: str | None = None
    failure_code: str | None = None
    channel: str | None = None
    created_gte: datetime | None = None
    created_lt: datetime | None = None
    starting_after: str | None = None  # cursor: the last id of the previous page
    limit: int = 20
    # A transfer id, channel reference or channel order id (or, within one merchant, an
    # idempotency key): the dashboard's search box.
    text: str | None = None


def page_statement(f: TransferFilter) -> Select[Any]:
    """One page of transfers matching ``f``, newest first, plus one row to tell whether
    there is more. Ids are time-ordered, so the id is the cursor."""
    stmt = select(transfers).order_by(_t.id.desc()).limit(f.limit + 1)
    if f.merchant_id is not None:
        stmt = stmt.where(_t.merchant_id == f.merchant_id)
    if f.text:
        # Each alternative is an indexed equality (primary key, unique reference, the
        # channel order id index, the (merchant, idempotency key) unique constraint).
        matches = [_t.id == f.text, _t.channel_reference == f.text, _t.channel_order_id == f.text]
        if f.merchant_id is not None:
            matches.append(_t.idempotency_key == f.text)
        stmt = stmt.where(or_(*matches))
    if f.status:
        stmt = stmt.where(_t.status == f.status)
    if f.failure_code:
        stmt = stmt.where(_t.failure_code == f.failure_code)
    if f.channel:
        stmt = stmt.where(_t.channel == f.channel)
    if f.created_gte:
        stmt = stmt.where(_t.created_at >= f.created_gte)
    if f.created_lt:
        stmt = stmt.where(_t.created_at < f.created_lt)
    if f.starting_after:
        stmt = stmt.where(_t.id < f.starting_after)
    return stmt


class TransferRepo:
    def __init__(
        self, db: Database, *, fast: bool = True, ids: Callable[[str], str] = new_id
    ) -> None:
        self.db = db
        self.fast = fast
        self._ids = ids  # journal entry and event ids (tests pass a deterministic one)

    async def _write(self, fn: Callable[[Connection], T]) -> T:
        """Every transaction of this repository (see the module docstring: on SQLite this
        is the single entry to the group-committing writer thread)."""
        return await self.db.run_write(fn)

    # --- reads: one statement each ----------------------------------------------------

    async def _one(self, stmt: Select[Any]) -> Transfer | None:
        async with self.db.read_statement() as conn:
            found = (await conn.execute(stmt)).mappings().first()
        return transfer_from_row(found) if found is not None else None

    async def get(self, transfer_id: str, merchant_id: str | None = None) -> Transfer | None:
        if self.fast:
            params = {"id": transfer_id, "merchant_id": merchant_id}
            of_merchant = merchant_id is not None
            if not self.db.is_sqlite:
                pg = _PG_GET[of_merchant]
                found = await self.db.run_on_driver(
                    lambda conn: pg.fetchrow(conn, params, self.db.counters)
                )
                return transfer_from_row(found) if found is not None else None
            reader = self.db.inline_reader()
            if reader is not None:
                try:
                    found = _SQLITE_GET[of_merchant].first(reader, params)
                except sqlite3.Error:
                    # Busy (a WAL recovery, say) or broken: read the usual way below, and
                    # open a fresh inline reader next time.
                    self.db.discard_inline_reader()
                else:
                    self.db.counters.statement(_SQLITE_GET[of_merchant].sql)
                    return transfer_from_row(found) if found is not None else None
        stmt = select(transfers).where(_t.id == transfer_id)
        if merchant_id is not None:
            stmt = stmt.where(_t.merchant_id == merchant_id)
        return await self._one(stmt)

    async def by_idempotency_key(self, merchant_id: str, key: str) -> Transfer | None:
        return await self._one(
            select(transfers).where(_t.merchant_id == merchant_id, _t.idempotency_key == key)
        )

    async def by_reference(self, reference: str) -> Transfer | None:
        return await self._one(select(transfers).where(_t.channel_reference == reference))

    async def page(self, f: TransferFilter) -> tuple[list[Transfer], bool]:
        """Newest first; ids are time-ordered, so the id is the cursor."""
        stmt = page_statement(f)
        async with self.db.read_statement() as conn:
            rows = [transfer_from_row(r) for r in (await conn.execute(stmt)).mappings()]
        return rows[: f.limit], len(rows) > f.limit

    async def due(
        self,
        *,
        now: datetime,
        pending_cutoff: datetime,
        held_channels: Sequence[str],
        limit: int,
    ) -> list[Transfer]:
        """What the sync loop should look at now: ``processing`` and
        ``requires_confirmation`` transfers due at ``next_sync_at``; ``pending`` ones due
        (parked) or written before ``pending_cutoff`` and never queued, except on
        ``held_channels`` (their circuit would refuse the send)."""
        pending = and_(
            _t.status == TransferStatus.pending.value,
            or_(
                _t.next_sync_at <= now,
                and_(_t.next_sync_at.is_(None), _t.created_at <= pending_cutoff),
            ),
        )
        if held_channels:
            pending = and_(pending, _t.channel.not_in(list(held_channels)))
        waiting = (TransferStatus.processing.value, TransferStatus.requires_confirmation.value)
        stmt = (
            select(transfers)
            .where(or_(and_(_t.status.in_(waiting), _t.next_sync_at <= now), pending))
            .order_by(_t.next_sync_at)
            .limit(limit)
        )
        async with self.db.read_statement() as conn:
            return [transfer_from_row(r) for r in (await conn.execute(stmt)).mappings()]

    # --- the create path --------------------------------------------------------------

    async def create_pending(self, t: Transfer) -> None:
        """Write the pending transfer with its hold, in one transaction.

        Raises InsufficientFunds (nothing written) when the merchant's available balance
        cannot cover amount + fee, UniqueViolation when its (merchant, key) exists.
        """
        entry_id = self._ids("je")
        if self.fast and not self.db.is_sqlite:
            row, hold, counters = row_of(t), t.hold(), self.db.counters
            await self.db.run_on_driver(
                lambda conn: _pg_pending.insert_pending(
                    conn, row, hold, entry_id=entry_id, counters=counters
                )
            )
            return
        await self._write(lambda conn: self._insert_pending(conn, t, entry_id))

    def _insert_pending(self, conn: Connection, t: Transfer, entry_id: str) -> None:
        _INSERT.run(conn, row_of(t), fast=self.fast)
        ledger.post(
            conn,
            t.hold(),
            now=t.created_at,
            merchant_id=t.merchant_id,
            transfer_id=t.id,
            entry_id=entry_id,
            fast=self.fast,
        )

    async def accept_batch(
        self, batch: Batch, items: Sequence[BatchItem], pending: Sequence[Transfer]
    ) -> None:
        """A batch, its items and (all-or-nothing) every item's pending transfer and hold,
        in one transaction: InsufficientFunds if any hold does not fit, and nothing is."""

        def write(conn: Connection) -> None:
            batch_repo.insert_batch(conn, batch, items)
            for t in pending:
                self._insert_pending(conn, t, self._ids("je"))

        await self._write(write)

    # --- status moves -----------------------------------------------------------------

    async def move(self, transfer_id: str, plan: Plan, *, known: Transfer | None = None) -> Moved:
        """Take the steps ``plan`` decides for the transfer, with their entries and events.

        ``known`` is the transfer as the caller last saw it (the send path just wrote it):
        the steps are then tried without reading it again, guarded by ``status = <known
        status>``; if someone else moved it meanwhile, the transaction plans again from a
        locked read.

        On PostgreSQL a move the ledger cannot refuse is one statement (``_pg_move``),
        guarded the same way; a stale guess is planned again from a fresh read.
        """
        if self.fast and not self.db.is_sqlite:
            moved = await self._pg_move(transfer_id, plan, known)
            if moved is not None:
                return moved

        def tx(conn: Connection) -> Moved:
            current = known if known is not None else self._locked(conn, transfer_id)
            for _ in range(2):
                steps = tuple(plan(current))
                if not steps:
                    return Moved(current, ())
                if self._take(conn, current, steps):
                    return Moved(steps[-1].after, steps)
                current = self._locked(conn, transfer_id)  # lost a race with the guess
            raise RuntimeError(f"transfer {transfer_id} changed under its lock")

        return await self._write(tx)

    async def _pg_move(self, transfer_id: str, plan: Plan, known: Transfer | None) -> Moved | None:
        """The move as one statement; None when it must run as the generic transaction."""
        current = known
        for _ in range(3):
            if current is None:
                current = await self.get(transfer_id)
                if current is None:
                    raise NoSuchTransfer(f"no transfer {transfer_id}")
            steps = tuple(plan(current))
            if not steps:
                return Moved(current, ())
            rows = [(s.after, s.entry, s.event.type, s.event.obj) for s in steps]
            values = _pg_move.params(current, rows, self._ids)
            if values is None:
                return None
            if await self.db.run_on_driver(
                partial(_pg_move.move, values=values, counters=self.db.counters)
            ):
                return Moved(steps[-1].after, steps)
            current = None  # moved by someone else meanwhile: plan again from a fresh read
        return None  # still losing races: the generic transaction reads under a lock

    async def cancel_queued(self, transfer_id: str, plan: Plan) -> Moved | None:
        """Cancel a batch item's transfer still queued (never handed to a channel) and its
        item in one transaction; None when the item is not (or no longer) queued."""

        def tx(conn: Connection) -> Moved | None:
            if not batch_repo.cancel_queued_item(conn, transfer_id):
                return None
            current = self._locked(conn, transfer_id)
            steps = tuple(plan(current))
            if not steps or not self._take(conn, current, steps):
                raise RuntimeError(f"transfer {transfer_id} queued but not pending")
            return Moved(steps[-1].after, steps)

        return await self._write(tx)

    def _take(self, conn: Connection, current: Transfer, steps: Sequence[Step]) -> bool:
        """Write ``steps`` from ``current``; False (nothing written) if ``current`` is stale."""
        before = current
        for n, step in enumerate(steps):
            after = step.after
            params = {c: getattr(after, c) for c in MUTABLE_FIELDS}
            params["status"] = after.status.value
            params.update(_id=after.id, _from=before.status.value)
            if _MOVE.run(conn, params, fast=self.fast) != 1:
                if n == 0:
                    return False  # stale guess; nothing written yet in this attempt
                raise RuntimeError(f"transfer {after.id} changed mid-move")
            if step.entry is not None:
                ledger.post(
                    conn,
                    step.entry,
                    now=after.updated_at,
                    merchant_id=after.merchant_id,
                    transfer_id=after.id,
                    entry_id=self._ids("je"),
                    fast=self.fast,
                )
            insert_event(
                conn,
                event_id=self._ids("evt"),
                merchant_id=after.merchant_id,
                event_type=step.event.type,
                obj=step.event.obj,
                now=after.updated_at,
                fast=self.fast,
            )
            before = after
        return True

    def _locked(self, conn: Connection, transfer_id: str) -> Transfer:
        stmt = select(transfers).where(_t.id == transfer_id)
        if conn.dialect.name != "sqlite":  # SQLite's single writer is the lock there
            stmt = stmt.with_for_update()
        found = conn.execute(stmt).mappings().first()
        if found is None:
            raise NoSuchTransfer(f"no transfer {transfer_id}")
        return transfer_from_row(found)

    # --- the sync loop's queue --------------------------------------------------------

    async def park(self, t: Transfer, due: datetime) -> Transfer:
        """A pending transfer waits for its channel: the sync loop sends it at ``due``."""
        params = {"_id": t.id, "due": due, "attempts": t.sync_attempts}
        await self._write(lambda conn: _PARK.run(conn, params, fast=self.fast))
        return replace(t, next_sync_at=due)

    async def requeue(self, t: Transfer, due: datetime) -> None:
        """A parked send its circuit still refuses: due again at ``due``, and the refusal
        does not count as an attempt (the backoff must not grow while the channel is away)."""
        await self.park(t, due)

    async def claim(self, t: Transfer, until: datetime) -> bool:
        """Take ``t`` for one sync attempt (its next one is due ``until``); False if another
        worker moved its ``next_sync_at`` or its status first."""
        params: dict[str, Any] = {"_id": t.id, "_status": t.status.value, "until": until}
        if t.next_sync_at is None:
            stmt = _CLAIM_FIRST
        else:
            stmt = _CLAIM
            params["_previous"] = t.next_sync_at
        claimed: bool = await self._write(lambda conn: stmt.run(conn, params, fast=self.fast) == 1)
        return claimed
