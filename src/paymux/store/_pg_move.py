"""PostgreSQL's fast path for a transfer's status move: ONE statement, one round trip.

The generic move is a transaction of BEGIN, the guarded UPDATE, the journal entry, its
postings, the outbox event and COMMIT: six round trips, each an event-loop turn and a trip
through SQLAlchemy. Here the same rows are written by one statement of data-modifying CTEs
in autocommit: the transfer's guarded UPDATE (``status = <the status planned from>``) to
the last step's state, and every step's journal entry, postings and event, each selected
FROM that UPDATE's result, so when the guard finds the transfer moved by someone else
nothing at all is written and the caller plans again from a fresh read. Entries, postings
and events travel as arrays (``unnest ... WITH ORDINALITY``, inserted in step order), so
the statement is the same text for any number of steps and is prepared once per connection.

Only moves that cannot be refused by the ledger take this path: a move whose entries credit
at most one cached balance (a release or a reversal gives a merchant its money back) and
debit none. Its credit needs no guard (a balance only grows), and one row locked by one
UPDATE cannot deadlock. Anything else (a debit, two cached accounts) returns None from
:func:`params` and runs as the generic transaction. Private to store/transfer_repo.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, String, Text, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY

from paymux.domain.ledger import JournalEntry
from paymux.domain.transfers import MUTABLE_FIELDS, Transfer
from paymux.store._pg_driver import PgStatement
from paymux.store.db import Counters
from paymux.store.ledger_repo import CACHED
from paymux.store.outbox_repo import event_row
from paymux.store.tables import UTCDateTime, transfers

# One step of a move as the repository planned it: the transfer after it, its entry (or
# None), its event's type and object.
StepRow = tuple[Transfer, JournalEntry | None, str, dict[str, Any]]

_SET = ", ".join(f"{c} = :m_{c}" for c in MUTABLE_FIELDS)
# Column names come from our own table definition; every value is a bound parameter.
_SQL = f"""
WITH moved AS (
    UPDATE transfers SET {_SET}
    WHERE id = :_id AND status = :_from
      AND (CAST(:credit_key AS VARCHAR) IS NULL
           OR EXISTS (SELECT 1 FROM accounts WHERE key = CAST(:credit_key AS VARCHAR)))
    RETURNING id
), insert_entries AS (
    INSERT INTO journal_entries (id, kind, merchant_id, transfer_id, topup_id, currency,
                                 created_at)
    SELECT e.id, e.kind, :merchant_id, moved.id, CAST(NULL AS VARCHAR), e.currency,
           e.created_at
    FROM moved, unnest(CAST(:e_id AS VARCHAR[]), CAST(:e_kind AS VARCHAR[]),
                       CAST(:e_currency AS VARCHAR[]), CAST(:e_at AS TIMESTAMPTZ[]))
                WITH ORDINALITY AS e (id, kind, currency, created_at, n)
    ORDER BY e.n
    RETURNING id
), insert_postings AS (
    INSERT INTO postings (entry_id, account_key, amount)
    SELECT p.entry_id, p.account_key, p.amount
    FROM moved, unnest(CAST(:p_entry AS VARCHAR[]), CAST(:p_key AS VARCHAR[]),
                       CAST(:p_amount AS BIGINT[]))
                WITH ORDINALITY AS p (entry_id, account_key, amount, n)
    ORDER BY p.n
    RETURNING id
), credit AS (
    UPDATE accounts SET balance = balance + CAST(:credit AS BIGINT)
    FROM moved WHERE accounts.key = CAST(:credit_key AS VARCHAR)
    RETURNING accounts.key
), insert_events AS (
    INSERT INTO events (id, merchant_id, type, object_id, payload, created_at, relayed_at)
    SELECT v.id, :merchant_id, v.type, v.object_id, v.payload, v.created_at,
           CAST(NULL AS TIMESTAMPTZ)
    FROM moved, unnest(CAST(:v_id AS VARCHAR[]), CAST(:v_type AS VARCHAR[]),
                       CAST(:v_object AS VARCHAR[]), CAST(:v_payload AS TEXT[]),
                       CAST(:v_at AS TIMESTAMPTZ[]))
                WITH ORDINALITY AS v (id, type, object_id, payload, created_at, n)
    ORDER BY v.n
    RETURNING id
)
SELECT count(*) FROM moved
"""  # noqa: S608

_STRINGS = ARRAY(String())
_STATEMENT = PgStatement(
    text(_SQL).bindparams(
        *(bindparam(f"m_{c}", type_=transfers.c[c].type) for c in MUTABLE_FIELDS),
        bindparam("credit", type_=BigInteger()),
        *(bindparam(n, type_=_STRINGS) for n in ("e_id", "e_kind", "e_currency", "p_entry")),
        *(bindparam(n, type_=_STRINGS) for n in ("p_key", "v_id", "v_type", "v_object")),
        bindparam("p_amount", type_=ARRAY(BigInteger())),
        bindparam("v_payload", type_=ARRAY(Text())),
        bindparam("e_at", type_=ARRAY(UTCDateTime())),
        bindparam("v_at", type_=ARRAY(UTCDateTime())),
    )
)


def params(
    current: Transfer, steps: Sequence[StepRow], ids: Callable[[str], str]
) -> dict[str, Any] | None:
    """The statement's parameters for ``steps`` taken from ``current``, or None when the
    move must run as a generic transaction (see the module docstring)."""
    cached = [
        p
        for _, entry, _, _ in steps
        if entry is not None
        for p in entry.postings
        if p.account.kind in CACHED
    ]
    if any(p.amount <= 0 for p in cached) or len({p.account.key for p in cached}) > 1:
        return None
    last = steps[-1][0]
    values: dict[str, Any] = {f"m_{c}": getattr(last, c) for c in MUTABLE_FIELDS}
    values["m_status"] = last.status.value
    entry_ids: list[str] = []
    e_kind: list[str] = []
    e_currency: list[str] = []
    e_at: list[datetime] = []
    p_entry: list[str] = []
    p_key: list[str] = []
    p_amount: list[int] = []
    events: list[dict[str, Any]] = []
    for after, entry, event_type, obj in steps:
        # Ids are drawn in the generic path's order: the entry's, then the event's.
        if entry is not None:
            entry_id = ids("je")
            entry_ids.append(entry_id)
            e_kind.append(entry.kind.value)
            e_currency.append(entry.currency)
            e_at.append(after.updated_at)
            for posting in entry.postings:
                p_entry.append(entry_id)
                p_key.append(posting.account.key)
                p_amount.append(posting.amount)
        events.append(
            event_row(
                event_id=ids("evt"),
                merchant_id=after.merchant_id,
                event_type=event_type,
                obj=obj,
                now=after.updated_at,
            )
        )
    values.update(
        _id=current.id,
        _from=current.status.value,
        merchant_id=current.merchant_id,
        credit_key=cached[0].account.key if cached else None,
        credit=sum(p.amount for p in cached),
        e_id=entry_ids,
        e_kind=e_kind,
        e_currency=e_currency,
        e_at=e_at,
        p_entry=p_entry,
        p_key=p_key,
        p_amount=p_amount,
        v_id=[e["id"] for e in events],
        v_type=[e["type"] for e in events],
        v_object=[e["object_id"] for e in events],
        v_payload=[e["payload"] for e in events],
        v_at=[e["created_at"] for e in events],
    )
    return values


async def move(conn: Any, *, values: dict[str, Any], counters: Counters) -> bool:
    """Run the move on the bare asyncpg connection ``conn``; False (nothing written) when
    the transfer is no longer in the status it was planned from."""
    return bool(await _STATEMENT.fetchval(conn, values, counters) == 1)
