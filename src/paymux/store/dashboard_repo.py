"""Read queries behind the dashboard: transfer search, a transfer's timeline facts, day
statistics, transfers in flight, webhook deliveries and merchants' balances.

Every list is keyset-paginated on a time-ordered id (newest first) and every filter rides
an index, so pages stay fast on millions of transfers. Scoping to one merchant is a
parameter of each query: a merchant's page passes its own id and can never read past it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict, cast

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from paymux.domain.reconciliation import Discrepancy
from paymux.domain.states import IN_FLIGHT
from paymux.store.channel_calls import ChannelCall, calls_for_transfer
from paymux.store.events_repo import DeliveryRow, EventRow
from paymux.store.reconciliation_repo import discrepancy_of
from paymux.store.reconciliation_tables import recon_discrepancies
from paymux.store.tables import (
    accounts,
    channel_notifications,
    events,
    journal_entries,
    merchants,
    postings,
    transfers,
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoints,
)
from paymux.store.transfer_repo import TransferFilter, page_statement
from paymux.store.webhook_endpoints_repo import AttemptRow

Row = dict[str, Any]  # a transfer row (the transfer repository's business)


class NotificationRow(TypedDict):
    """A channel's notification as received (operators see its raw body)."""

    id: int
    channel: str
    reference: str | None
    verified: bool
    result: str
    detail: str | None
    body: str
    received_at: datetime


class EndpointDelivery(DeliveryRow):
    url: str  # the endpoint's


class DeliveryListing(DeliveryRow):
    url: str
    merchant_id: str
    event_type: str
    object_id: str  # what the event is about (a transfer id, a top-up id)


class OwnedDelivery(DeliveryRow):
    merchant_id: str  # the endpoint's merchant


@dataclass(frozen=True)
class TransferSearch:
    merchant_id: str | None  # None: every merchant (operators)
    text: str | None = None  # a transfer id, channel reference, channel order id or idem key
    status: str | None = None
    channel: str | None = None
    created_gte: datetime | None = None
    created_lt: datetime | None = None
    before_id: str | None = None  # keyset cursor: the last id of the previous page
    limit: int = 50


async def search_transfers(conn: AsyncConnection, q: TransferSearch) -> tuple[list[Row], bool]:
    # The transfer repository's own filter chain (the merchant API's list uses it too).
    stmt = page_statement(
        TransferFilter(
            merchant_id=q.merchant_id,
            text=q.text,
            status=q.status,
            channel=q.channel,
            created_gte=q.created_gte,
            created_lt=q.created_lt,
            starting_after=q.before_id,
            limit=q.limit,
        )
    )
    rows = [dict(r) for r in (await conn.execute(stmt)).mappings()]
    return rows[: q.limit], len(rows) > q.limit


async def get_transfer(
    conn: AsyncConnection, transfer_id: str, merchant_id: str | None
) -> Row | None:
    stmt = select(transfers).where(transfers.c.id == transfer_id)
    if merchant_id is not None:
        stmt = stmt.where(transfers.c.merchant_id == merchant_id)
    found = (await conn.execute(stmt)).mappings().first()
    return dict(found) if found else None


@dataclass(frozen=True)
class LedgerLine:
    entry_id: str
    kind: str
    created_at: datetime
    account_key: str
    amount: int


@dataclass(frozen=True)
class TransferFacts:
    """Everything stored about one transfer, each list oldest first."""

    transfer: Row
    events: list[EventRow] = field(default_factory=list)
    deliveries: list[EndpointDelivery] = field(default_factory=list)
    attempts: list[AttemptRow] = field(default_factory=list)
    ledger: list[LedgerLine] = field(default_factory=list)
    notifications: list[NotificationRow] = field(default_factory=list)
    calls: list[ChannelCall] = field(default_factory=list)
    discrepancies: list[Discrepancy] = field(default_factory=list)  # reconciliation findings


async def transfer_facts(conn: AsyncConnection, transfer: Row) -> TransferFacts:
    tid = transfer["id"]
    e, d, a, w = events.c, webhook_deliveries.c, webhook_attempts.c, webhook_endpoints.c
    evs = [
        cast(EventRow, dict(r))
        for r in (
            await conn.execute(
                select(events)
                .where(and_(e.object_id == tid, e.merchant_id == transfer["merchant_id"]))
                .order_by(e.id)
            )
        ).mappings()
    ]
    event_ids = [ev["id"] for ev in evs]
    deliveries: list[EndpointDelivery] = []
    attempts: list[AttemptRow] = []
    if event_ids:
        deliveries = [
            cast(EndpointDelivery, dict(r))
            for r in (
                await conn.execute(
                    select(webhook_deliveries, w.url)
                    .join(webhook_endpoints, w.id == d.endpoint_id)
                    .where(d.event_id.in_(event_ids))
                    .order_by(d.id)
                )
            ).mappings()
        ]
    if deliveries:
        attempts = [
            cast(AttemptRow, dict(r))
            for r in (
                await conn.execute(
                    select(webhook_attempts)
                    .where(a.delivery_id.in_([x["id"] for x in deliveries]))
                    .order_by(a.id)
                )
            ).mappings()
        ]
    j, p = journal_entries.c, postings.c
    ledger = [
        LedgerLine(
            entry_id=r.id,
            kind=r.kind,
            created_at=r.created_at,
            account_key=r.account_key,
            amount=int(r.amount),
        )
        for r in await conn.execute(
            select(j.id, j.kind, j.created_at, p.account_key, p.amount)
            .join(postings, p.entry_id == j.id)
            .where(j.transfer_id == tid)
            .order_by(j.id, p.id)
        )
    ]
    n = channel_notifications.c
    notes = [
        cast(NotificationRow, dict(r))
        for r in (
            await conn.execute(
                select(channel_notifications)
                .where(n.reference == transfer["channel_reference"])
                .order_by(n.id)
            )
        ).mappings()
    ]
    r = recon_discrepancies.c
    found = [
        discrepancy_of(x)
        for x in (
            await conn.execute(
                select(recon_discrepancies)
                .where(r.reference == transfer["channel_reference"])
                .order_by(r.created_at)
            )
        ).mappings()
    ]
    return TransferFacts(
        transfer=transfer,
        discrepancies=found,
        events=evs,
        deliveries=deliveries,
        attempts=attempts,
        ledger=ledger,
        notifications=notes,
        calls=await calls_for_transfer(conn, tid),
    )


@dataclass(frozen=True)
class StatRow:
    """Transfers created in a window, for one channel and status."""

    channel: str
    status: str
    currency: str
    count: int
    amount: int
    fee: int
    channel_cost: int


async def window_stats(
    conn: AsyncConnection, start: datetime, end: datetime, merchant_id: str | None
) -> list[StatRow]:
    t = transfers.c
    stmt = (
        select(
            t.channel,
            t.status,
            t.currency,
            func.count(),
            func.coalesce(func.sum(t.amount), 0),
            func.coalesce(func.sum(t.fee), 0),
            func.coalesce(func.sum(t.channel_cost), 0),
        )
        .where(and_(t.created_at >= start, t.created_at < end))
        .group_by(t.channel, t.status, t.currency)
    )
    if merchant_id is not None:
        stmt = stmt.where(t.merchant_id == merchant_id)
    return [
        StatRow(ch, st, cur, int(n), int(amt), int(fee), int(cost))
        for ch, st, cur, n, amt, fee, cost in (await conn.execute(stmt)).all()
    ]


@dataclass(frozen=True)
class InFlight:
    counts: dict[str, int]  # status -> transfers
    oldest: datetime | None  # created_at of the oldest one


async def in_flight(
    conn: AsyncConnection, statuses: Sequence[str], merchant_id: str | None
) -> InFlight:
    t = transfers.c
    stmt = select(t.status, func.count(), func.min(t.created_at)).where(t.status.in_(statuses))
    if merchant_id is not None:
        stmt = stmt.where(t.merchant_id == merchant_id)
    rows = (await conn.execute(stmt.group_by(t.status))).all()
    oldest = [r[2] for r in rows if r[2] is not None]  # min() keeps the UTC column type
    return InFlight(counts={r[0]: int(r[1]) for r in rows}, oldest=min(oldest) if oldest else None)


@dataclass(frozen=True)
class DeliverySearch:
    merchant_id: str | None
    status: str | None = None  # pending | succeeded | failed
    endpoint_id: str | None = None
    before_id: str | None = None
    limit: int = 50


async def search_deliveries(
    conn: AsyncConnection, q: DeliverySearch
) -> tuple[list[DeliveryListing], bool]:
    d, w, e = webhook_deliveries.c, webhook_endpoints.c, events.c
    stmt = (
        select(
            webhook_deliveries,
            w.url,
            w.merchant_id,
            e.type.label("event_type"),
            e.object_id,
        )
        .join(webhook_endpoints, w.id == d.endpoint_id)
        .join(events, e.id == d.event_id)
        .order_by(d.id.desc())
        .limit(q.limit + 1)
    )
    if q.merchant_id is not None:
        stmt = stmt.where(w.merchant_id == q.merchant_id)
    if q.status:
        stmt = stmt.where(d.status == q.status)
    if q.endpoint_id:
        stmt = stmt.where(d.endpoint_id == q.endpoint_id)
    if q.before_id:
        stmt = stmt.where(d.id < q.before_id)
    rows = [cast(DeliveryListing, dict(r)) for r in (await conn.execute(stmt)).mappings()]
    return rows[: q.limit], len(rows) > q.limit


@dataclass(frozen=True)
class FailingEndpoint:
    endpoint_id: str
    merchant_id: str
    url: str
    failed: int  # deliveries that gave up
    retrying: int  # pending deliveries with at least one failed attempt


async def failing_endpoints(
    conn: AsyncConnection, merchant_id: str | None, limit: int = 20
) -> list[FailingEndpoint]:
    d, w = webhook_deliveries.c, webhook_endpoints.c
    failed = func.sum(case((d.status == "failed", 1), else_=0))
    retrying = func.sum(case((and_(d.status == "pending", d.attempts > 0), 1), else_=0))
    stmt = (
        select(d.endpoint_id, w.merchant_id, w.url, failed, retrying)
        .join(webhook_endpoints, w.id == d.endpoint_id)
        .where(or_(d.status == "failed", and_(d.status == "pending", d.attempts > 0)))
        .group_by(d.endpoint_id, w.merchant_id, w.url)
        .order_by(failed.desc())
        .limit(limit)
    )
    if merchant_id is not None:
        stmt = stmt.where(w.merchant_id == merchant_id)
    return [
        FailingEndpoint(eid, mid, url, int(f or 0), int(r or 0))
        for eid, mid, url, f, r in (await conn.execute(stmt)).all()
    ]


async def get_delivery(conn: AsyncConnection, delivery_id: str) -> OwnedDelivery | None:
    d, w = webhook_deliveries.c, webhook_endpoints.c
    found = (
        (
            await conn.execute(
                select(webhook_deliveries, w.merchant_id)
                .join(webhook_endpoints, w.id == d.endpoint_id)
                .where(d.id == delivery_id)
            )
        )
        .mappings()
        .first()
    )
    return cast(OwnedDelivery, dict(found)) if found else None


@dataclass(frozen=True)
class MerchantBalance:
    id: str
    name: str
    key_hint: str
    active: bool
    created_at: datetime
    available: int
    held: int


async def merchants_page(
    conn: AsyncConnection, *, after_id: str | None, limit: int, only: str | None = None
) -> tuple[list[MerchantBalance], bool]:
    """Merchants in id order with their CNY available (cached) and held (derived) balance."""
    m, acc, t = merchants.c, accounts.c, transfers.c
    stmt = select(merchants).order_by(m.id).limit(limit + 1)
    if after_id:
        stmt = stmt.where(m.id > after_id)
    if only:
        stmt = stmt.where(m.id == only)
    rows = [dict(r) for r in (await conn.execute(stmt)).mappings()]
    page = rows[:limit]
    ids = [r["id"] for r in page]
    available: dict[str, int] = {}
    held: dict[str, int] = {}
    if ids:
        keys = {f"merchant_available:{i}:CNY": i for i in ids}
        for key, bal in (
            await conn.execute(select(acc.key, acc.balance).where(acc.key.in_(list(keys))))
        ).all():
            available[keys[key]] = int(bal)
        for mid, total in (
            await conn.execute(
                select(t.merchant_id, func.sum(t.amount + t.fee))
                .where(
                    and_(
                        t.merchant_id.in_(ids),
                        t.status.in_(sorted(s.value for s in IN_FLIGHT)),
                        t.currency == "CNY",
                    )
                )
                .group_by(t.merchant_id)
            )
        ).all():
            held[mid] = int(total or 0)
    return [
        MerchantBalance(
            id=r["id"],
            name=r["name"],
            key_hint=r["key_hint"],
            active=bool(r["active"]),
            created_at=r["created_at"],
            available=available.get(r["id"], 0),
            held=held.get(r["id"], 0),
        )
        for r in page
    ], len(rows) > limit


async def open_discrepancies(
    conn: AsyncConnection, *, before_id: str | None, limit: int
) -> tuple[list[Discrepancy], bool]:
    """Open reconciliation discrepancies, newest first (ids are time-ordered)."""
    r = recon_discrepancies.c
    stmt = (
        select(recon_discrepancies).where(r.state == "open").order_by(r.id.desc()).limit(limit + 1)
    )
    if before_id:
        stmt = stmt.where(r.id < before_id)
    rows = [discrepancy_of(x) for x in (await conn.execute(stmt)).mappings()]
    return rows[:limit], len(rows) > limit


async def open_discrepancy_counts(conn: AsyncConnection) -> dict[str, int]:
    """severity -> open discrepancies."""
    r = recon_discrepancies.c
    rows = await conn.execute(
        select(r.severity, func.count()).where(r.state == "open").group_by(r.severity)
    )
    return {str(sev): int(n) for sev, n in rows.all()}
