"""The append-only audit log and its hash chain: all of its SQL.

Appends are serialised so each record can carry the hash of the one before: by SQLite's
single writer, and on PostgreSQL by a transaction-scoped advisory lock taken before the last
record is read. The append runs in the transaction of the change it records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypedDict, cast

import orjson
from sqlalchemy import Connection, select, text

from paymux.domain.audit_chain import GENESIS, record_hash
from paymux.domain.ids import new_id
from paymux.store.access_tables import audit_events
from paymux.store.db import Database

_A = audit_events.c
# Any constant: the advisory lock that serialises audit appends on PostgreSQL.
_LOCK_ID = 0x7061796D7578_01


class AuditRecord(TypedDict):
    """One stored record; ``hash`` covers every other field (domain/audit_chain.py)."""

    seq: int
    id: str
    occurred_at: str  # fixed-width UTC text (audit_time): hashed exactly as stored
    actor_key_id: str | None
    actor_kind: str
    actor_role: str | None
    actor_merchant_id: str | None
    action: str
    object_type: str
    object_id: str | None
    merchant_id: str | None
    before: str | None  # JSON, secrets redacted
    after: str | None
    request_id: str | None
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class AuditDraft:
    actor_key_id: str | None
    actor_kind: str  # merchant | operator | system
    actor_role: str | None
    actor_merchant_id: str | None
    action: str  # e.g. "api_key.revoke"
    object_type: str
    object_id: str | None
    merchant_id: str | None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    request_id: str | None = None
    occurred_at: datetime | None = field(default=None)


def audit_time(at: datetime) -> str:
    """Fixed-width UTC text, so text order is time order and the hash input is stable."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def append(conn: Connection, draft: AuditDraft, now: datetime) -> AuditRecord:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
    last = conn.execute(select(_A.seq, _A.hash).order_by(_A.seq.desc()).limit(1)).first()
    seq, prev = (int(last.seq) + 1, str(last.hash)) if last else (1, GENESIS)
    record: dict[str, Any] = {
        "seq": seq,
        "id": new_id("aud"),
        "occurred_at": audit_time(draft.occurred_at or now),
        "actor_key_id": draft.actor_key_id,
        "actor_kind": draft.actor_kind,
        "actor_role": draft.actor_role,
        "actor_merchant_id": draft.actor_merchant_id,
        "action": draft.action,
        "object_type": draft.object_type,
        "object_id": draft.object_id,
        "merchant_id": draft.merchant_id,
        "before": _json(draft.before),
        "after": _json(draft.after),
        "request_id": draft.request_id,
        "prev_hash": prev,
    }
    record["hash"] = record_hash(record)
    conn.execute(audit_events.insert().values(**record))
    return cast(AuditRecord, record)


def _plain(row: Any) -> AuditRecord:
    # Column keys may be str subclasses (quoted_name), which JSON encoders refuse.
    return cast(AuditRecord, {str(k): v for k, v in row.items()})


@dataclass(frozen=True)
class AuditFilter:
    merchant_id: str | None = None
    action: str | None = None
    object_id: str | None = None
    actor_key_id: str | None = None
    occurred_gte: datetime | None = None
    occurred_lt: datetime | None = None
    before_seq: int | None = None  # cursor: newest first
    limit: int = 50


async def list_events(db: Database, f: AuditFilter) -> tuple[list[AuditRecord], bool]:
    stmt = select(audit_events).order_by(_A.seq.desc()).limit(f.limit + 1)
    if f.merchant_id is not None:
        stmt = stmt.where(_A.merchant_id == f.merchant_id)
    if f.action:
        stmt = stmt.where(_A.action == f.action)
    if f.object_id:
        stmt = stmt.where(_A.object_id == f.object_id)
    if f.actor_key_id:
        stmt = stmt.where(_A.actor_key_id == f.actor_key_id)
    if f.occurred_gte is not None:
        stmt = stmt.where(_A.occurred_at >= audit_time(f.occurred_gte))
    if f.occurred_lt is not None:
        stmt = stmt.where(_A.occurred_at < audit_time(f.occurred_lt))
    if f.before_seq is not None:
        stmt = stmt.where(_A.seq < f.before_seq)
    async with db.read() as conn:
        rows = [_plain(r) for r in (await conn.execute(stmt)).mappings()]
    return rows[: f.limit], len(rows) > f.limit


async def all_in_order(db: Database, batch: int = 1000) -> list[AuditRecord]:
    """Every record in seq order, read in batches."""
    out: list[AuditRecord] = []
    after = 0
    async with db.read() as conn:
        while True:
            rows = (
                await conn.execute(
                    select(audit_events).where(_A.seq > after).order_by(_A.seq).limit(batch)
                )
            ).mappings()
            page = [_plain(r) for r in rows]
            if not page:
                return out
            out.extend(page)
            after = int(page[-1]["seq"])
