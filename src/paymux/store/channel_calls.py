"""Channel calls (send / query / cancel) as an audit trail for a transfer's timeline.

A row holds when, how long, and what the channel answered in our outcome taxonomy plus its
own status word and codes; never the request or response bodies, so no payee data. Rows
are buffered in memory and written in batches off the request path: the send path then
pays no extra write transaction. A crash loses at most the last unflushed batch of this
audit trail, never money state (that lives in the transfer row and the ledger).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import Column, Connection, Index, Integer, String, Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from paymux.store.db import Database
from paymux.store.tables import UTCDateTime, metadata

log = logging.getLogger(__name__)

channel_calls = Table(
    "channel_calls",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("transfer_id", String(40), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("kind", String(16), nullable=False),  # send | query | cancel
    Column("started_at", UTCDateTime(), nullable=False),
    Column("latency_ms", Integer, nullable=False),
    # Our taxonomy (succeeded, failed, processing, ...) or "error" / "timeout".
    Column("outcome", String(32), nullable=False),
    Column("channel_status", String(64), nullable=True),
    Column("channel_code", String(64), nullable=True),
    Column("channel_message", String(256), nullable=True),
    Column("channel_order_id", String(64), nullable=True),
    Index("ix_channel_calls_transfer_id", "transfer_id"),
)


@dataclass(frozen=True)
class ChannelCall:
    transfer_id: str
    channel: str
    kind: str
    started_at: datetime
    latency_ms: int
    outcome: str
    channel_status: str | None = None
    channel_code: str | None = None
    channel_message: str | None = None
    channel_order_id: str | None = None


_FIELDS = tuple(f.name for f in fields(ChannelCall))


def _row(call: ChannelCall) -> dict[str, object]:
    # Not dataclasses.asdict: it deep-copies every value (a datetime each call).
    row: dict[str, object] = {name: getattr(call, name) for name in _FIELDS}
    for name, size in (("channel_status", 64), ("channel_code", 64), ("channel_message", 256)):
        value = row[name]
        row[name] = value[:size] if isinstance(value, str) else None
    return row


def insert_calls(conn: Connection, calls: list[ChannelCall]) -> None:
    conn.execute(channel_calls.insert(), [_row(c) for c in calls])


async def calls_for_transfer(conn: AsyncConnection, transfer_id: str) -> list[ChannelCall]:
    c = channel_calls.c
    rows = await conn.execute(
        select(channel_calls).where(c.transfer_id == transfer_id).order_by(c.id)
    )
    return [
        ChannelCall(
            transfer_id=r.transfer_id,
            channel=r.channel,
            kind=r.kind,
            started_at=r.started_at,
            latency_ms=r.latency_ms,
            outcome=r.outcome,
            channel_status=r.channel_status,
            channel_code=r.channel_code,
            channel_message=r.channel_message,
            channel_order_id=r.channel_order_id,
        )
        for r in rows
    ]


class ChannelCallLog:
    """Buffers calls and writes them in one transaction shortly after (or on :meth:`flush`)."""

    def __init__(self, delay_seconds: float = 0.2, max_buffer: int = 10_000) -> None:
        self._delay = delay_seconds
        self._max = max_buffer
        self._pending: list[ChannelCall] = []
        self._task: asyncio.Task[None] | None = None

    def record(self, db: Database, call: ChannelCall) -> None:
        if len(self._pending) >= self._max:  # the database is down: drop, never grow forever
            return
        self._pending.append(call)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush_later(db))

    async def _flush_later(self, db: Database) -> None:
        await asyncio.sleep(self._delay)
        await self.flush(db)

    async def flush(self, db: Database) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            await db.run_write(lambda conn: insert_calls(conn, batch))
        except Exception:  # audit only: never fail a transfer because of it
            log.warning("could not record %d channel calls", len(batch), exc_info=True)

    async def close(self, db: Database) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        await self.flush(db)
