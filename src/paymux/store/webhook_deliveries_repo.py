"""SQL of webhook deliveries: relaying the outbox into delivery rows, finding deliveries a
crash left unscheduled, and recording each attempt.

The relay and the delivery worker (webhooks/) decide; this module only reads and writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from paymux.domain.ids import new_id
from paymux.store.tables import (
    events,
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoints,
    webhook_secrets,
)

_ERROR_MAX_CHARS = 256  # webhook_attempts.error
_D, _E, _W, _K = webhook_deliveries.c, events.c, webhook_endpoints.c, webhook_secrets.c


def parse_event_types(stored: str) -> list[str]:
    """An endpoint's subscription as stored (a JSON array of event types)."""
    parsed = orjson.loads(stored)
    return [str(t) for t in parsed] if isinstance(parsed, list) else []


def new_delivery(event_id: str, endpoint_id: str, now: datetime) -> dict[str, Any]:
    """A `webhook_deliveries` row, due now."""
    return {
        "id": new_id("whd"),
        "event_id": event_id,
        "endpoint_id": endpoint_id,
        "status": "pending",
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
        "next_attempt_at": now,
    }


# --- the relay: outbox events -> delivery rows (one run_write transaction) ----------------


def take_unrelayed(conn: Connection, limit: int) -> list[dict[str, Any]]:
    """The oldest events not relayed yet (id, merchant_id, type)."""
    stmt = (
        select(_E.id, _E.merchant_id, _E.type)
        .where(_E.relayed_at.is_(None))
        .order_by(_E.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        # Replicas relay disjoint batches; SQLite's single writer needs no lock.
        stmt = stmt.with_for_update(skip_locked=True)
    return [dict(r) for r in conn.execute(stmt).mappings()]


def live_endpoints(
    conn: Connection, merchant_ids: set[str]
) -> dict[str, list[tuple[str, list[str]]]]:
    """Each merchant's enabled, undeleted endpoints with their subscriptions, by id."""
    rows = conn.execute(
        select(_W.id, _W.merchant_id, _W.event_types)
        .where(
            and_(_W.merchant_id.in_(merchant_ids), _W.enabled.is_(True), _W.deleted_at.is_(None))
        )
        .order_by(_W.id)
    )
    by_merchant: dict[str, list[tuple[str, list[str]]]] = {}
    for row in rows.mappings():
        by_merchant.setdefault(row["merchant_id"], []).append(
            (row["id"], parse_event_types(row["event_types"]))
        )
    return by_merchant


def insert_deliveries(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(webhook_deliveries.insert(), list(rows))


def mark_relayed(conn: Connection, event_ids: Sequence[str], now: datetime) -> None:
    conn.execute(update(events).where(_E.id.in_(list(event_ids))).values(relayed_at=now))


async def overdue_pending(
    conn: AsyncConnection, cutoff: datetime, after: str, limit: int
) -> list[tuple[str, int]]:
    """Pending deliveries due before ``cutoff`` (id, attempts), in id order after ``after``."""
    rows = await conn.execute(
        select(_D.id, _D.attempts)
        .where(and_(_D.status == "pending", _D.next_attempt_at < cutoff, _D.id > after))
        .order_by(_D.id)
        .limit(limit)
    )
    return [(str(r[0]), int(r[1])) for r in rows.all()]


# --- the delivery worker: one attempt --------------------------------------------------------


@dataclass(frozen=True)
class DeliveryWork:
    """Everything one attempt needs, read before the (slow) HTTP call."""

    delivery_id: str
    status: str
    attempts: int
    event_id: str
    payload: str
    endpoint_id: str
    url: str
    endpoint_live: bool
    secrets: list[str]  # the endpoint's active signing secrets, newest first


async def load_work(conn: AsyncConnection, delivery_id: str, now: datetime) -> DeliveryWork | None:
    row = (
        (
            await conn.execute(
                select(
                    _D.id,
                    _D.status,
                    _D.attempts,
                    _D.event_id,
                    _D.endpoint_id,
                    _E.payload,
                    _W.url,
                    _W.enabled,
                    _W.deleted_at,
                )
                .join(events, _E.id == _D.event_id)
                .join(webhook_endpoints, _W.id == _D.endpoint_id)
                .where(_D.id == delivery_id)
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    secrets = (
        await conn.execute(
            select(_K.secret)
            .where(
                and_(
                    _K.endpoint_id == row["endpoint_id"],
                    or_(_K.expires_at.is_(None), _K.expires_at > now),
                )
            )
            .order_by(_K.id.desc())
        )
    ).scalars()
    return DeliveryWork(
        delivery_id=row["id"],
        status=row["status"],
        attempts=row["attempts"],
        event_id=row["event_id"],
        payload=row["payload"],
        endpoint_id=row["endpoint_id"],
        url=row["url"],
        endpoint_live=bool(row["enabled"]) and row["deleted_at"] is None,
        secrets=[str(s) for s in secrets],
    )


async def give_up(conn: AsyncConnection, delivery_id: str, now: datetime) -> None:
    await conn.execute(
        update(webhook_deliveries)
        .where(and_(_D.id == delivery_id, _D.status == "pending"))
        .values(status="failed", updated_at=now, next_attempt_at=None)
    )


async def record_attempt(
    conn: AsyncConnection,
    work: DeliveryWork,
    *,
    ok: bool,
    status_code: int | None,
    latency_ms: int,
    response_excerpt: str | None,
    error: str | None,
    status: str,
    next_at: datetime | None,
    now: datetime,
) -> None:
    """The attempt row, and the delivery moved to ``status`` (one transaction: the caller's)."""
    await conn.execute(
        webhook_attempts.insert().values(
            delivery_id=work.delivery_id,
            endpoint_id=work.endpoint_id,
            event_id=work.event_id,
            attempt=work.attempts + 1,
            ok=ok,
            status_code=status_code,
            latency_ms=latency_ms,
            response_excerpt=response_excerpt,
            error=error[:_ERROR_MAX_CHARS] if error else None,
            created_at=now,
        )
    )
    # Conditional: a duplicate attempt (expired lease) must not reopen a finished one.
    await conn.execute(
        update(webhook_deliveries)
        .where(and_(_D.id == work.delivery_id, _D.status == "pending"))
        .values(status=status, attempts=_D.attempts + 1, updated_at=now, next_attempt_at=next_at)
    )
