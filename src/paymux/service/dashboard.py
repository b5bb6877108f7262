"""Use cases behind the dashboard: the overview figures, a transfer's timeline, "query the
channel now", and the lists the pages show. Reads go through store/dashboard_repo.py.

Every function takes the caller's scope: ``merchant_id=None`` is the operator (everything),
a merchant id limits every query to that merchant, and ``operator=False`` leaves out what
is Paymux's business only (channel cost, margin, house ledger accounts, raw channel bodies).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, cast
from zoneinfo import ZoneInfo

from paymux.channels.base import ChannelResult
from paymux.domain import states
from paymux.domain.ledger import AccountRef, LedgerError
from paymux.domain.outcomes import Outcome
from paymux.domain.reconciliation import Discrepancy
from paymux.domain.states import TransferStatus
from paymux.service.channel_calls import recorded
from paymux.service.errors import Conflict, NotFound
from paymux.service.gateway import Gateway
from paymux.service.reports import business_day_start
from paymux.service.transfers import apply_result, get_transfer, order_for
from paymux.service.views import mask_account, mask_name
from paymux.store import dashboard_repo as repo
from paymux.store.webhook_endpoints_repo import AttemptRow

# Statuses whose transfer still holds funds and waits on the channel or the payee.
IN_FLIGHT: tuple[str, ...] = tuple(sorted(s.value for s in states.IN_FLIGHT))
# Paid out (a returned one moved money too, and keeps its fee).
SETTLED = frozenset({TransferStatus.succeeded.value, TransferStatus.returned.value})
OVERVIEW_DAYS = 30


# --- overview ----------------------------------------------------------------------------


@dataclass
class Totals:
    """Transfers created in a period (all minor units, CNY)."""

    count: int = 0
    settled: int = 0  # succeeded or returned
    failed: int = 0
    volume: int = 0  # amount of the settled ones
    fees: int = 0
    channel_cost: int = 0

    @property
    def margin(self) -> int:
        return self.fees - self.channel_cost

    @property
    def success_rate(self) -> Decimal | None:
        """Settled / finished (settled + failed), in percent to one decimal."""
        finished = self.settled + self.failed
        if finished == 0:
            return None
        return (Decimal(100 * self.settled) / finished).quantize(
            Decimal("0.1"), rounding=ROUND_HALF_EVEN
        )

    def add(self, row: repo.StatRow) -> None:
        self.count += row.count
        if row.status in SETTLED:
            self.settled += row.count
            self.volume += row.amount
            self.fees += row.fee
            self.channel_cost += row.channel_cost
        elif row.status == TransferStatus.failed.value:
            self.failed += row.count


@dataclass(frozen=True)
class DayFigures:
    day: date
    total: Totals
    by_channel: Mapping[str, Totals]


@dataclass(frozen=True)
class Overview:
    generated_at: datetime
    timezone: str
    days: list[DayFigures]  # oldest first; the last one is today
    channels: list[str]
    in_flight: repo.InFlight
    discrepancies: dict[str, int] = field(default_factory=dict)  # operators: severity -> open

    @property
    def today(self) -> Totals:
        return self.days[-1].total

    @property
    def period(self) -> Totals:
        out = Totals()
        for d in self.days:
            for name in ("count", "settled", "failed", "volume", "fees", "channel_cost"):
                setattr(out, name, getattr(out, name) + getattr(d.total, name))
        return out

    def channel_totals(self) -> dict[str, Totals]:
        out: dict[str, Totals] = {}
        for d in self.days:
            for ch, t in d.by_channel.items():
                acc = out.setdefault(ch, Totals())
                for name in ("count", "settled", "failed", "volume", "fees", "channel_cost"):
                    setattr(acc, name, getattr(acc, name) + getattr(t, name))
        return out

    def oldest_age_seconds(self) -> int | None:
        if self.in_flight.oldest is None:
            return None
        return max(0, int((self.generated_at - self.in_flight.oldest).total_seconds()))


# Per (database, scope, day) figures. A past day's transfers rarely change (a late outcome
# or a bounce), so its figures are kept for minutes; today's and yesterday's for seconds.
# Thirty grouped queries over millions of rows then run once per few minutes, not per view.
_RECENT_TTL_SECONDS = 15.0
_PAST_TTL_SECONDS = 600.0
_day_cache: dict[tuple[int, str | None, date], tuple[float, list[repo.StatRow]]] = {}


async def _day_stats(
    gw: Gateway, conn: Any, tz: ZoneInfo, day: date, today: date, merchant_id: str | None
) -> list[repo.StatRow]:
    key = (id(gw.db), merchant_id, day)
    hit = _day_cache.get(key)
    now = time.monotonic()
    if hit is not None and hit[0] > now:
        return hit[1]
    start = business_day_start(day, tz)
    end = business_day_start(day + timedelta(days=1), tz)
    rows = await repo.window_stats(conn, start, end, merchant_id)
    ttl = _RECENT_TTL_SECONDS if (today - day).days <= 1 else _PAST_TTL_SECONDS
    if len(_day_cache) > 50_000:
        _day_cache.clear()
    _day_cache[key] = (now + ttl, rows)
    return rows


def forget_cached_figures() -> None:
    _day_cache.clear()


async def overview(gw: Gateway, merchant_id: str | None) -> Overview:
    now = gw.clock()
    tz = ZoneInfo(gw.settings.business_timezone)
    today = now.astimezone(tz).date()
    days: list[DayFigures] = []
    channels: set[str] = set(gw.channels)
    async with gw.db.read() as conn:
        for n in range(OVERVIEW_DAYS - 1, -1, -1):
            day = today - timedelta(days=n)
            total = Totals()
            by_channel: dict[str, Totals] = {}
            for row in await _day_stats(gw, conn, tz, day, today, merchant_id):
                if row.currency != "CNY":
                    continue
                total.add(row)
                by_channel.setdefault(row.channel, Totals()).add(row)
                channels.add(row.channel)
            days.append(DayFigures(day=day, total=total, by_channel=by_channel))
        flight = await repo.in_flight(conn, IN_FLIGHT, merchant_id)
        # Reconciliation is Paymux's own business: operators only.
        open_found = await repo.open_discrepancy_counts(conn) if merchant_id is None else {}
    return Overview(
        generated_at=now,
        timezone=tz.key,
        days=days,
        channels=sorted(channels),
        in_flight=flight,
        discrepancies=open_found,
    )


# --- transfers ---------------------------------------------------------------------------


async def search_transfers(
    gw: Gateway, q: repo.TransferSearch
) -> tuple[list[dict[str, Any]], bool]:
    async with gw.db.read() as conn:
        return await repo.search_transfers(conn, q)


async def transfer_in_scope(
    gw: Gateway, transfer_id: str, merchant_id: str | None
) -> dict[str, Any]:
    """The transfer, or NotFound when it does not exist or is another merchant's."""
    async with gw.db.read() as conn:
        row = await repo.get_transfer(conn, transfer_id, merchant_id)
    if row is None:
        raise NotFound(f"no transfer {transfer_id}")
    return row


@dataclass(frozen=True)
class TimelineItem:
    at: datetime
    kind: str  # created | status | call | notification | ledger | webhook
    title: str
    detail: str = ""
    tone: str = "neutral"  # neutral | good | bad | wait: how the page colours it
    rows: list[tuple[str, str]] = field(default_factory=list)  # label, value
    event_id: str | None = None  # webhook items: what "redeliver" re-sends
    attempts: list[dict[str, Any]] = field(default_factory=list)
    raw: str | None = None  # operator only: the channel's raw notification body


_TONES = {
    "succeeded": "good",
    "failed": "bad",
    "returned": "bad",
    "processing": "wait",
    "pending": "wait",
    "requires_confirmation": "wait",
}
_KIND_ORDER = {
    "created": 0,
    "call": 1,
    "notification": 2,
    "status": 3,
    "ledger": 4,
    "webhook": 5,
    "reconciliation": 6,
}


def _tone(word: str) -> str:
    return _TONES.get(word, "neutral")


def _ledger_items(facts: repo.TransferFacts, operator: bool) -> list[TimelineItem]:
    entries: dict[str, list[repo.LedgerLine]] = {}
    for line in facts.ledger:
        entries.setdefault(line.entry_id, []).append(line)
    items = []
    merchant = facts.transfer["merchant_id"]
    for entry_id, lines in entries.items():
        shown = []
        for line in lines:
            try:
                ref = AccountRef.from_key(line.account_key)
            except LedgerError:
                ref = None
            mine = ref is not None and ref.owner == merchant
            if operator or mine:
                label = line.account_key if operator else line.account_key.split(":", 1)[0]
                shown.append((label, _signed(line.amount)))
        items.append(
            TimelineItem(
                at=lines[0].created_at,
                kind="ledger",
                title=f"Ledger entry: {lines[0].kind}",
                detail=entry_id,
                rows=shown,
            )
        )
    return items


def _signed(amount: int) -> str:
    sign = "-" if amount < 0 else "+"
    whole, cents = divmod(abs(amount), 100)
    return f"{sign}{whole:,}.{cents:02d}"


def build_timeline(facts: repo.TransferFacts, *, operator: bool) -> list[TimelineItem]:
    t = facts.transfer
    items: list[TimelineItem] = [
        TimelineItem(
            at=t["created_at"],
            kind="created",
            title="Transfer created, funds held",
            detail=f"{t['payee_type']} {mask_account(t['payee_type'], t['payee_account'])}"
            + (f" ({mask_name(t['payee_name'])})" if t["payee_name"] else ""),
            rows=[("idempotency key", t["idempotency_key"]), ("channel", t["channel"])],
        )
    ]
    for call in facts.calls:
        rows = [("latency", f"{call.latency_ms} ms")]
        if call.channel_status:
            rows.append(("channel status", call.channel_status))
        if call.channel_code:
            rows.append(("code", call.channel_code))
        if call.channel_message:
            rows.append(("message", call.channel_message))
        if call.channel_order_id:
            rows.append(("channel order", call.channel_order_id))
        items.append(
            TimelineItem(
                at=call.started_at,
                kind="call",
                title=f"{call.channel} {call.kind} → {call.outcome}",
                tone=_tone(call.outcome) if call.outcome not in ("error", "timeout") else "bad",
                rows=rows,
            )
        )
    for note in facts.notifications:
        items.append(
            TimelineItem(
                at=note["received_at"],
                kind="notification",
                title=f"{note['channel']} notification: {note['result']}",
                detail="signature verified" if note["verified"] else "signature NOT verified",
                tone="neutral" if note["verified"] else "bad",
                rows=[("detail", note["detail"])] if note["detail"] else [],
                raw=note["body"][:4000] if operator else None,
            )
        )
    attempts_by_delivery: dict[str, list[AttemptRow]] = {}
    for a in facts.attempts:
        attempts_by_delivery.setdefault(a["delivery_id"], []).append(a)
    for ev in facts.events:
        status = ev["type"].removeprefix("transfer.")
        items.append(
            TimelineItem(
                at=ev["created_at"],
                kind="status",
                title=f"Status → {status}",
                detail=ev["id"],
                tone=_tone(status),
            )
        )
        deliveries = [d for d in facts.deliveries if d["event_id"] == ev["id"]]
        attempts: list[dict[str, Any]] = []
        for d in deliveries:
            for a in attempts_by_delivery.get(d["id"], []):
                attempts.append({**a, "url": d["url"], "delivery_status": d["status"]})
        state = "; ".join(
            f"{d['status']} after {d['attempts']} attempt{'s' if d['attempts'] != 1 else ''}"
            for d in deliveries
        )
        items.append(
            TimelineItem(
                at=ev["created_at"],
                kind="webhook",
                title=f"Webhook {ev['type']}",
                detail=state or "no endpoint subscribed",
                tone="bad" if any(d["status"] == "failed" for d in deliveries) else "neutral",
                event_id=ev["id"],
                attempts=attempts,
            )
        )
    items += _ledger_items(facts, operator)
    if operator:
        for dsc in facts.discrepancies:
            rows = [("channel day", dsc.bill_date), ("severity", dsc.severity)]
            if dsc.statement_amount is not None or dsc.paymux_amount is not None:
                rows.append(
                    ("amounts", f"statement {dsc.statement_amount} / ours {dsc.paymux_amount}")
                )
            if dsc.resolved_at is not None:
                rows.append(("resolved", f"{dsc.resolved_by}: {dsc.resolution}"))
            items.append(
                TimelineItem(
                    at=cast(datetime, dsc.created_at),
                    kind="reconciliation",
                    title=f"Reconciliation: {dsc.kind.replace('_', ' ')} ({dsc.state})",
                    detail=dsc.detail,
                    tone="bad" if dsc.state == "open" else "neutral",
                    rows=rows,
                )
            )
    items.sort(key=lambda i: (i.at, _KIND_ORDER.get(i.kind, 9)))
    return items


async def timeline(
    gw: Gateway, transfer_id: str, merchant_id: str | None, *, operator: bool
) -> tuple[dict[str, Any], list[TimelineItem]]:
    row = await transfer_in_scope(gw, transfer_id, merchant_id)
    await gw.call_log.flush(gw.db)  # calls made a moment ago belong on the page
    async with gw.db.read() as conn:
        facts = await repo.transfer_facts(conn, row)
    return row, build_timeline(facts, operator=operator)


@dataclass(frozen=True)
class QueryAnswer:
    outcome: str
    channel_status: str | None
    before: str
    after: str


async def query_channel_now(gw: Gateway, transfer_id: str) -> QueryAnswer:
    """Ask the channel about the transfer and apply its answer through the state machine.

    Never sends: a channel that has no such order is reported, and the sync loop (which
    may resend under the same reference) stays in charge of that case.
    """
    t = await get_transfer(gw, transfer_id, None)
    channel = gw.channels.get(t.channel)
    if channel is None:
        raise Conflict(f"channel {t.channel} is not configured")
    order = order_for(gw, t)
    try:
        async with asyncio.timeout(gw.settings.channel_call_timeout_seconds):
            result: ChannelResult = await recorded(
                gw, "query", channel.name, order.reference, channel.query(order)
            )
    except TimeoutError:
        raise Conflict("the channel did not answer in time; try again") from None
    except Exception as exc:
        raise Conflict(f"the channel query failed ({type(exc).__name__})") from None
    after = t.status.value
    if result.outcome is not Outcome.NOT_FOUND:
        moved = await apply_result(gw, transfer_id, result, source="operator_query")
        after = moved.status.value
    return QueryAnswer(
        outcome=result.outcome.value,
        channel_status=result.raw_status,
        before=t.status.value,
        after=after,
    )


# --- merchants and webhooks --------------------------------------------------------------


async def merchants_page(
    gw: Gateway, *, after_id: str | None, limit: int = 50, only: str | None = None
) -> tuple[list[repo.MerchantBalance], bool]:
    async with gw.db.read() as conn:
        return await repo.merchants_page(conn, after_id=after_id, limit=limit, only=only)


async def deliveries(
    gw: Gateway, q: repo.DeliverySearch
) -> tuple[list[repo.DeliveryListing], list[repo.FailingEndpoint], bool]:
    async with gw.db.read() as conn:
        rows, more = await repo.search_deliveries(conn, q)
        failing = await repo.failing_endpoints(conn, q.merchant_id)
    return rows, failing, more


async def delivery_merchant(
    gw: Gateway, delivery_id: str, merchant_id: str | None
) -> repo.OwnedDelivery:
    async with gw.db.read() as conn:
        found = await repo.get_delivery(conn, delivery_id)
    if found is None or (merchant_id is not None and found["merchant_id"] != merchant_id):
        raise NotFound(f"no webhook delivery {delivery_id}")
    return found


async def open_discrepancies(
    gw: Gateway, *, before_id: str | None, limit: int = 50
) -> tuple[list[Discrepancy], bool]:
    async with gw.db.read() as conn:
        return await repo.open_discrepancies(conn, before_id=before_id, limit=limit)
