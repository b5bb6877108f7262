"""The simulation's invariants, checked against the database after every step.

An independent reader: plain SQL on its own ``sqlite3`` connection, none of the service's
code. It follows the database incrementally (new postings and events since the last step,
every transfer's status) so a check per step stays cheap, and :meth:`Checker.full` re-reads
everything from scratch now and then and at the end.

Invariants (each message names the one that broke):
- every journal entry balances and has at least two postings; all postings sum to zero;
  posted entries never change (count and sum of the old postings are stable);
- each merchant's cached ``available`` equals its postings and is never negative;
- ``held`` equals ``amount + fee`` of the merchant's transfers in flight;
- each merchant's available + held = top-ups - (amount + fee) of settled transfers
  - fees of returned ones (the bounce gives the amount back, not the fee);
- no transfer moves backwards or leaves a final state (the state machine's own steps);
- one outbox event per state change: a transfer's events are exactly the steps it took;
  one ledger entry per money step (hold; settle / release / reverse);
- at most one channel order per reference, each for a transfer we recorded, with its amount;
  our ``succeeded`` / ``failed`` / ``returned`` agree with what the channel did.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from paymux.domain.outcomes import Outcome
from paymux.domain.states import RANK, TransferStatus, can_move, ledger_action

SETTLED = {TransferStatus.succeeded.value, TransferStatus.returned.value}
FINAL = {"failed", "returned", "canceled"}
DONE = {"succeeded", "failed", "returned", "canceled"}  # no hold left


def in_flight(status: str) -> bool:
    return status not in DONE


@dataclass
class TransferFacts:
    merchant_id: str
    idempotency_key: str
    status: str
    amount: int
    fee: int
    channel: str
    reference: str
    events: list[str] = field(default_factory=list)  # "succeeded", ... in the order written
    entries: list[str] = field(default_factory=list)  # journal entry kinds


def expected_events(status: str, seen: list[str]) -> list[str]:
    """Breaks of "one event per step" for a transfer now in ``status`` whose events, in
    order, are ``seen``: each step pending -> ... -> status must be one allowed move."""
    problems: list[str] = []
    dupes = [e for e, n in Counter(seen).items() if n > 1]
    if dupes:
        problems.append(f"events repeated: {dupes}")
    chain = [TransferStatus.pending.value, *seen]
    for frm, to in itertools.pairwise(chain):
        if not can_move(TransferStatus(frm), TransferStatus(to)):
            problems.append(f"event chain {chain} has the step {frm} -> {to}")
    if chain[-1] != status:
        problems.append(f"status {status} but the last event says {chain[-1]}")
    return problems


def expected_entries(events: list[str], entries: list[str]) -> list[str]:
    """The journal entries a transfer with these events must have: one hold, then the entry
    of each money step."""
    want = ["hold"]
    chain = [TransferStatus.pending.value, *events]
    for frm, to in itertools.pairwise(chain):
        try:
            action = ledger_action(TransferStatus(frm), TransferStatus(to))
        except ValueError:
            continue  # reported by expected_events
        if action is not None:
            want.append(action.value)
    if Counter(want) != Counter(entries):
        return [f"ledger entries {sorted(entries)} but its steps make {sorted(want)}"]
    return []


def backwards(before: str, after: str) -> str | None:
    if before == after:
        return None
    b, a = TransferStatus(before), TransferStatus(after)
    if before in FINAL or RANK[a] <= RANK[b]:
        return f"moved backwards or out of a final state: {before} -> {after}"
    return None


@dataclass(frozen=True)
class ChannelOrderFacts:
    channel: str
    reference: str
    amount: int
    status: str  # an Outcome value
    creations: int


def channel_agreement(
    facts_by_ref: dict[str, TransferFacts],
    order_of: Callable[[str], ChannelOrderFacts | None],
    refs: Iterable[str],
) -> list[str]:
    """For each reference in ``refs``: at most one channel order, only for a transfer we
    recorded, with its channel and amount, agreeing with every outcome we state."""
    problems: list[str] = []
    for ref in sorted(set(refs)):
        t, o = facts_by_ref.get(ref), order_of(ref)
        if o is None:
            if t is not None and t.status in SETTLED:
                problems.append(f"{ref}: we say {t.status} but the channel has no order")
            continue
        if o.creations > 1:
            problems.append(f"{o.channel} has {o.creations} orders for {ref}")
        if t is None:
            problems.append(f"{o.channel} order {ref} has no transfer of ours")
            continue
        if t.channel != o.channel or t.amount != o.amount:
            problems.append(f"{ref}: order {o.channel}/{o.amount} vs {t.channel}/{t.amount}")
        if t.status == "succeeded" and o.status not in ("succeeded", "returned"):
            problems.append(f"{ref}: we say succeeded, the channel says {o.status}")
        if t.status == "failed" and o.status != Outcome.FAILED.value:
            problems.append(f"{ref}: we say failed, the channel says {o.status}")
        if t.status == "returned" and o.status != Outcome.RETURNED.value:
            problems.append(f"{ref}: we say returned, the channel says {o.status}")
        if t.status == "canceled" and o.status != Outcome.CANCELED.value:
            problems.append(f"{ref}: we say canceled, the channel says {o.status}")
        if o.status == Outcome.CANCELED.value and t.status in SETTLED:
            problems.append(f"{ref}: the channel cancelled it, we say {t.status}")
    return problems


def sqlite_time(at: datetime) -> str:
    """``at`` as SQLAlchemy stores a UTC timestamp in SQLite (naive UTC text)."""
    return at.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


class Checker:
    """Follows one SQLite database file and checks the invariants above.

    Per step it reads only what can have changed: transfers created or updated since the
    previous step's clock (every move stamps ``updated_at``), new journal entries, postings
    and events, and the channel orders the world touched. :meth:`full` re-reads everything.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.facts: dict[str, TransferFacts] = {}
        self.by_ref: dict[str, TransferFacts] = {}
        self.balances: dict[str, int] = defaultdict(int)  # journal replay
        self.money: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # merchant: spent, held
        self._posting_mark = 0
        self._posting_count = 0
        self._posting_sum = 0
        self._event_mark = 0
        self._entry_mark = 0
        self._transfer_mark = 0
        self._since: str | None = None

    def close(self) -> None:
        self.conn.close()

    def _account(self, t: TransferFacts, sign: int) -> None:
        """Add (sign 1) or take away (-1) a transfer's effect on its merchant's money."""
        spent_held = self.money[t.merchant_id]
        if t.status in SETTLED:
            spent_held[0] += sign * (t.amount + t.fee)
        if t.status == TransferStatus.returned.value:
            spent_held[0] -= sign * t.amount  # the bounce gives back the amount, not the fee
        if in_flight(t.status):
            spent_held[1] += sign * (t.amount + t.fee)

    def step(
        self,
        topups: dict[str, int],
        order_of: Callable[[str], ChannelOrderFacts | None],
        touched: Iterable[str],
        now: datetime,
        *,
        everything: bool = False,
    ) -> list[str]:
        """Check after one step. ``touched``: references of the channel orders made or
        changed since the last step (all of them with ``everything``, which also re-reads
        every transfer's status)."""
        problems: list[str] = []
        dirty: set[str] = set()  # transfers to re-check: new, moved, new events or entries
        q = self.conn.execute
        q("BEGIN")
        try:
            # Posted entries are immutable: what we read before is still there, unchanged.
            count, total = q(
                "SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM postings WHERE id <= ?",
                (self._posting_mark,),
            ).fetchone()
            if (count, total) != (self._posting_count, self._posting_sum):
                problems.append(f"old postings changed: {count}/{total}")
            cols = (
                "SELECT rowid, id, merchant_id, idempotency_key, status, amount, fee, channel,"
                " channel_reference FROM transfers"
            )
            if everything or self._since is None:
                rows = q(cols)
            else:
                rows = q(
                    cols + " WHERE rowid > ? OR updated_at >= ?", (self._transfer_mark, self._since)
                )
            for rowid, tid, merchant, key, status, amount, fee, channel, ref in rows:
                self._transfer_mark = max(self._transfer_mark, rowid)
                known = self.facts.get(tid)
                if known is None:
                    t = TransferFacts(merchant, key, status, amount, fee, channel, ref)
                    self.facts[tid] = self.by_ref[ref] = t
                    self._account(t, 1)
                    dirty.add(tid)
                    continue
                if known.status == status:
                    continue
                if (moved := backwards(known.status, status)) is not None:
                    problems.append(f"transfer {tid} {moved}")
                self._account(known, -1)
                known.status = status
                self._account(known, 1)
                dirty.add(tid)
            for rowid, kind, tid in q(
                "SELECT rowid, kind, transfer_id FROM journal_entries WHERE rowid > ?"
                " ORDER BY rowid",
                (self._entry_mark,),
            ):
                self._entry_mark = rowid
                if tid is not None:
                    if tid not in self.facts:
                        problems.append(f"entry {kind} for unknown transfer {tid}")
                        continue
                    self.facts[tid].entries.append(kind)
                    dirty.add(tid)
            new_postings: dict[str, list[int]] = defaultdict(list)
            for pid, eid, key, amount in q(
                "SELECT id, entry_id, account_key, amount FROM postings WHERE id > ? ORDER BY id",
                (self._posting_mark,),
            ):
                self._posting_mark = pid
                self._posting_count += 1
                self._posting_sum += amount
                self.balances[key] += amount
                new_postings[eid].append(amount)
            for eid, amounts in new_postings.items():
                if sum(amounts) != 0 or len(amounts) < 2:
                    problems.append(f"entry {eid} does not balance: {amounts}")
            if self._posting_sum != 0:
                problems.append(f"postings sum to {self._posting_sum}")
            for rowid, etype, obj in q(
                "SELECT rowid, type, object_id FROM events WHERE rowid > ? ORDER BY rowid",
                (self._event_mark,),
            ):
                self._event_mark = rowid
                if etype.startswith("transfer."):
                    if obj not in self.facts:
                        problems.append(f"event {etype} for unknown transfer {obj}")
                        continue
                    self.facts[obj].events.append(etype.removeprefix("transfer."))
                    dirty.add(obj)
            cached = dict(
                q("SELECT key, balance FROM accounts WHERE kind = 'merchant_available'").fetchall()
            )
        finally:
            q("COMMIT")
        self._since = sqlite_time(now)
        for key, balance in cached.items():
            if balance < 0:
                problems.append(f"{key} is negative: {balance}")
            if balance != self.balances.get(key, 0):
                problems.append(f"{key} cached {balance} != journal {self.balances.get(key, 0)}")
        for tid in sorted(self.facts if everything else dirty):
            t = self.facts[tid]
            for p in expected_events(t.status, t.events) + expected_entries(t.events, t.entries):
                problems.append(f"transfer {tid}: {p}")
        for merchant in set(topups) | set(self.money):
            spent, held = self.money[merchant]
            avail = self.balances.get(f"merchant_available:{merchant}:CNY", 0)
            held_posted = self.balances.get(f"merchant_held:{merchant}:CNY", 0)
            if held_posted != held:
                problems.append(f"{merchant}: held {held_posted} != in flight {held}")
            expected = topups.get(merchant, 0) - spent
            if avail + held_posted != expected:
                problems.append(
                    f"{merchant}: available {avail} + held {held_posted} != top-ups - settled"
                    f" - fees + returns = {expected}"
                )
        refs = set(touched) | {self.facts[tid].reference for tid in dirty}
        if everything:
            refs |= set(self.by_ref)
        problems += channel_agreement(self.by_ref, order_of, refs)
        return problems

    def full(
        self,
        topups: dict[str, int],
        order_of: Callable[[str], ChannelOrderFacts | None],
        all_refs: Iterable[str],
        now: datetime,
    ) -> list[str]:
        """Everything again from an empty state: catches what incremental reading trusts."""
        fresh = Checker(self.path)
        try:
            problems = fresh.step(topups, order_of, all_refs, now, everything=True)
            for tid, t in fresh.facts.items():
                mine = self.facts.get(tid)
                if mine is None or mine.status != t.status:
                    problems.append(f"transfer {tid}: incremental view disagrees with a re-read")
            return problems
        finally:
            fresh.close()
