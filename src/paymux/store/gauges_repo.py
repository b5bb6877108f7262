"""The few reads behind the ``/metrics`` gauges: each uses an index and touches a bounded
number of rows, so a scrape stays cheap on a database with millions of transfers.

- in-flight transfers per status: ``ix_transfers_status_next_sync`` (status prefix, covering),
  each count capped at COUNT_CAP rows;
- oldest ``processing`` transfer (by ``updated_at``, when it entered processing): the same
  status prefix, so only rows still processing are read;
- outbox lag and backlog: ``ix_events_relayed_at`` (unrelayed rows only, capped);
- webhook backlog: ``ix_webhook_deliveries_status_next_attempt`` (capped);
- webhook failure ratio: the last N attempts by primary key.

Counts of final statuses are not read here (that would scan the transfers of a period): the
``paymux_transfer_transitions_total`` counters carry them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Executable, func, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from paymux.store.tables import events, transfers, webhook_attempts, webhook_deliveries

# Statuses a transfer waits in; other branches may add some (a missing one counts 0).
IN_FLIGHT_STATUSES = ("pending", "processing", "requires_confirmation")


COUNT_CAP = 100_000  # a backlog this large is reported as COUNT_CAP: the alarm is the same


@dataclass(frozen=True)
class GaugeReadings:
    in_flight: dict[str, int]
    oldest_processing_since: datetime | None
    unrelayed_events: int
    oldest_unrelayed_event_at: datetime | None
    pending_deliveries: int
    overdue_deliveries: int
    recent_attempts: int
    recent_failed_attempts: int


def _oldest_processing(dialect: str) -> Executable:
    if dialect == "sqlite":
        # SQLite's planner, seeing few distinct statuses, scans the table instead of the
        # status index (measured: 0.4 s vs 0 ms on 300,000 transfers); tell it which index.
        return text(
            "SELECT min(updated_at) AS oldest FROM transfers"
            " INDEXED BY ix_transfers_status_next_sync WHERE status = 'processing'"
        ).columns(oldest=transfers.c.updated_at.type)
    t = transfers.c
    return select(func.min(t.updated_at)).where(t.status == "processing")


async def _capped_count(conn: AsyncConnection, table: Any, *conditions: Any) -> int:
    capped = (
        select(literal_column("1")).select_from(table).where(*conditions).limit(COUNT_CAP)
    ).subquery()
    return int((await conn.execute(select(func.count()).select_from(capped))).scalar_one())


async def read_gauges(
    conn: AsyncConnection, *, now: datetime, attempts_window: int
) -> GaugeReadings:
    t = transfers.c
    in_flight = {
        status: await _capped_count(conn, transfers, t.status == status)
        for status in IN_FLIGHT_STATUSES
    }
    oldest_processing = (await conn.execute(_oldest_processing(conn.dialect.name))).scalar()
    e = events.c
    unrelayed = await _capped_count(conn, events, e.relayed_at.is_(None))
    oldest_event = (
        await conn.execute(select(func.min(e.created_at)).where(e.relayed_at.is_(None)))
    ).scalar()
    d = webhook_deliveries.c
    pending = await _capped_count(conn, webhook_deliveries, d.status == "pending")
    overdue = await _capped_count(
        conn, webhook_deliveries, d.status == "pending", d.next_attempt_at <= now
    )
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
        oldest_processing_since=oldest_processing,
        unrelayed_events=unrelayed,
        oldest_unrelayed_event_at=oldest_event,
        pending_deliveries=pending,
        overdue_deliveries=overdue,
        recent_attempts=int(tried),
        recent_failed_attempts=int(failed),
    )
