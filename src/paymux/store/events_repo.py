"""Merchants' events as the events API reads them, with the deliveries made of each (the
outbox writes events; the relay and worker move deliveries)."""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict, cast

from sqlalchemy import and_, select

from paymux.store.db import Database
from paymux.store.tables import events, webhook_deliveries

_E, _D = events.c, webhook_deliveries.c


class EventRow(TypedDict):
    id: str
    merchant_id: str
    type: str
    object_id: str
    payload: str  # the event as JSON, id included
    created_at: datetime
    relayed_at: datetime | None


class DeliveryRow(TypedDict):
    id: str
    event_id: str
    endpoint_id: str
    status: str  # pending | succeeded | failed
    attempts: int
    created_at: datetime
    updated_at: datetime
    next_attempt_at: datetime | None


async def page(
    db: Database,
    merchant_id: str,
    *,
    event_type: str | None,
    limit: int,
    starting_after: str | None,
) -> tuple[list[EventRow], bool]:
    """The merchant's events, newest first (ids are time-ordered); and whether there are
    more."""
    stmt = select(events).where(_E.merchant_id == merchant_id).order_by(_E.id.desc())
    stmt = stmt.limit(limit + 1)
    if event_type:
        stmt = stmt.where(_E.type == event_type)
    if starting_after:
        stmt = stmt.where(_E.id < starting_after)
    async with db.read() as conn:
        rows = [cast(EventRow, dict(r)) for r in (await conn.execute(stmt)).mappings()]
    return rows[:limit], len(rows) > limit


async def with_deliveries(
    db: Database, merchant_id: str, event_id: str
) -> tuple[EventRow, list[DeliveryRow]] | None:
    """The merchant's event and its deliveries (oldest first), read together."""
    async with db.read() as conn:
        found = (
            (
                await conn.execute(
                    select(events).where(and_(_E.id == event_id, _E.merchant_id == merchant_id))
                )
            )
            .mappings()
            .first()
        )
        if found is None:
            return None
        deliveries = (
            await conn.execute(
                select(webhook_deliveries).where(_D.event_id == event_id).order_by(_D.id)
            )
        ).mappings()
        return cast(EventRow, dict(found)), [cast(DeliveryRow, dict(d)) for d in deliveries]
