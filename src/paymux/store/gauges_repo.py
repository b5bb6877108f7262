"""The few reads behind the ``/metrics`` gauges: each uses an index and is bounded, so a
scrape stays cheap on a database with millions of transfers.

- in-flight transfers per status: ``ix_transfers_status_next_sync`` (status prefix); only
  rows still in flight are touched;
- transfers created in the recent window, per status: ``ix_transfers_created_at`` range;
- oldest ``processing`` transfer: same status prefix, in-flight rows only;
- outbox lag and backlog: ``ix_events_relayed_at`` (unrelayed rows only);
- webhook backlog: ``ix_webhook_deliveries_status_next_attempt``;
- webhook failure ratio: the last N attempts by primary key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from paymux.store.tables import events, transfers, webhook_attempts, webhook_deliveries

# Statuses a transfer waits in; other branches may add some (a missing one counts 0).
IN_FLIGHT_STATUSES = ("pending", "processing", "requires_confirmation")


@dataclass(frozen=True)
class GaugeReadings:
    in_flight: dict[str, int]
    recent_by_status: dict[str, int]
    oldest_processing_created_at: datetime | None
    unrelayed_events: int
    oldest_unrelayed_event_at: datetime | None
    pending_deliveries: int
    overdue_deliveries: int
    recent_attempts: int
    recent_failed_attempts: int


async def read_gauges(
    conn: AsyncConnection, *, now: datetime, recent_since: datetime, attempts_window: int
) -> GaugeReadings:
    t = transfers.c
    in_flight = {
        status: int(count)
        for status, count in (
            await conn.execute(
                select(t.status, func.count())
                .where(t.status.in_(IN_FLIGHT_STATUSES))
                .group_by(t.status)
            )
        ).all()
    }
    recent = {
        status: int(count)
        for status, count in (
            await conn.execute(
                select(t.status, func.count())
                .where(t.created_at >= recent_since)
                .group_by(t.status)
            )
        ).all()
    }
    oldest_processing = (
        await conn.execute(select(func.min(t.created_at)).where(t.status == "processing"))
    ).scalar()
    e = events.c
    unrelayed, oldest_event = (
        await conn.execute(
            select(func.count(), func.min(e.created_at)).where(e.relayed_at.is_(None))
        )
    ).one()
    d = webhook_deliveries.c
    pending, overdue = (
        await conn.execute(
            select(
                func.count(),
                func.count().filter(d.next_attempt_at <= now),
            ).where(d.status == "pending")
        )
    ).one()
    last = (
        select(webhook_attempts.c.ok)
        .order_by(webhook_attempts.c.id.desc())
        .limit(attempts_window)
        .subquery()
    )
    tried, failed = (
        await conn.execute(
            select(func.count(), func.count().filter(last.c.ok.is_(False))).select_from(last)
        )
    ).one()
    return GaugeReadings(
        in_flight=in_flight,
        recent_by_status=recent,
        oldest_processing_created_at=oldest_processing,
        unrelayed_events=int(unrelayed),
        oldest_unrelayed_event_at=oldest_event,
        pending_deliveries=int(pending),
        overdue_deliveries=int(overdue),
        recent_attempts=int(tried),
        recent_failed_attempts=int(failed),
    )
