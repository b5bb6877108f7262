"""The fee report: what merchants paid Paymux (and, for operators, what channels cost us).

Source of truth is the ledger, not the transfer rows: a report line sums the ``settle``
journal entries created in the period, read from their postings (store/fee_report_repo.py).
So a period's totals equal the period's
``fee_revenue`` and ``channel_cost`` postings to the fen. A returned transfer keeps its fee
(see :mod:`paymux.domain.ledger`), so it stays in the report of the day it settled.

A period is a run of whole business days in a time zone: from the first day's local
midnight up to (excluding) the midnight after the last day. Each day is queried with its
own UTC bounds, so day buckets need no SQL time-zone functions and come out the same on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from paymux.domain.money import SUPPORTED_CURRENCIES
from paymux.service.errors import InvalidRequest
from paymux.service.gateway import Gateway
from paymux.service.views import iso
from paymux.store import fee_report_repo as repo
from paymux.store.fee_report_repo import FeeReportLine, Window

# Group keys in the order columns appear; `merchant` is for operators only.
GROUP_KEYS: tuple[str, ...] = ("day", "merchant", "channel", "payee_type")
OPERATOR_ONLY_GROUPS = frozenset({"merchant"})
# The name a group key has in a line (JSON key and CSV column).
GROUP_FIELDS: Mapping[str, str] = {
    "day": "day",
    "merchant": "merchant_id",
    "channel": "channel",
    "payee_type": "payee_type",
}
DEFAULT_GROUP_BY: tuple[str, ...] = ("day",)
# One query per business day when grouping by day: a year is the longest period served.
MAX_DAYS = 366

_DAY_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)


@dataclass(frozen=True)
class FeeReportQuery:
    """Business days ``first_day`` .. ``last_day`` (both inclusive) in ``timezone``."""

    first_day: date
    last_day: date
    timezone: ZoneInfo
    group_by: tuple[str, ...] = DEFAULT_GROUP_BY
    merchant_id: str | None = None  # None: every merchant (operators only)

    def __post_init__(self) -> None:
        if self.last_day < self.first_day:
            raise InvalidRequest("`to` is before `from`")
        if (self.last_day - self.first_day).days + 1 > MAX_DAYS:
            raise InvalidRequest(f"a report covers at most {MAX_DAYS} days")
        unknown = [g for g in self.group_by if g not in GROUP_KEYS]
        if unknown or len(set(self.group_by)) != len(self.group_by):
            raise InvalidRequest(
                f"group_by is a comma list of distinct {', '.join(GROUP_KEYS)}; "
                f"got {','.join(self.group_by)!r}"
            )

    @property
    def days(self) -> list[date]:
        count = (self.last_day - self.first_day).days + 1
        return [self.first_day + timedelta(days=n) for n in range(count)]


@dataclass(frozen=True)
class FeeReport:
    query: FeeReportQuery
    period_start: datetime  # UTC, inclusive
    period_end: datetime  # UTC, exclusive
    lines: tuple[FeeReportLine, ...]
    totals: tuple[FeeReportLine, ...]  # one per currency; ``group`` is empty


# --- parsing query parameters ------------------------------------------------------------


def parse_business_day(text: str, name: str) -> date:
    """Strict ``YYYY-MM-DD`` (``date.fromisoformat`` alone also takes ``20260101``)."""
    if not _DAY_TEXT.fullmatch(text):
        raise InvalidRequest(f"`{name}` must be a date as YYYY-MM-DD, got {text!r}")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"`{name}` is not a calendar date: {text!r}") from None


def parse_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRequest(f"unknown time zone {name!r} (use an IANA name)") from None


def parse_group_by(text: str, *, operator: bool) -> tuple[str, ...]:
    """``"day,channel"`` -> ("day", "channel"); empty text -> no grouping (totals only)."""
    keys = tuple(part.strip() for part in text.split(",") if part.strip())
    if not operator:
        forbidden = sorted(OPERATOR_ONLY_GROUPS.intersection(keys))
        if forbidden:
            raise InvalidRequest(f"group_by {', '.join(forbidden)} is for operators only")
    return keys


def business_day_start(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant at which ``day`` begins in ``tz``."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


# --- the report --------------------------------------------------------------------------


def _totals(lines: Sequence[FeeReportLine]) -> tuple[FeeReportLine, ...]:
    currencies = sorted(SUPPORTED_CURRENCIES | {line.currency for line in lines})
    totals = []
    for currency in currencies:
        mine = [line for line in lines if line.currency == currency]
        totals.append(
            FeeReportLine(
                group={},
                currency=currency,
                transfer_count=sum(line.transfer_count for line in mine),
                volume=sum(line.volume for line in mine),
                fees=sum(line.fees for line in mine),
                channel_cost=sum(line.channel_cost for line in mine),
            )
        )
    return tuple(totals)


def _sort_key(line: FeeReportLine) -> tuple[Any, ...]:
    return (*(line.group.get(GROUP_FIELDS[g], "") for g in GROUP_KEYS), line.currency)


async def fee_report(gw: Gateway, query: FeeReportQuery) -> FeeReport:
    """The report for ``query``; ``query.merchant_id`` must already be the caller's own
    merchant (or any, for operators): this function does not authorise."""
    tz = query.timezone
    period_start = business_day_start(query.first_day, tz)
    period_end = business_day_start(query.last_day + timedelta(days=1), tz)
    if "day" in query.group_by:
        windows = [
            Window(
                business_day_start(day, tz),
                business_day_start(day + timedelta(days=1), tz),
                {"day": day.isoformat()},
            )
            for day in query.days
        ]
    else:
        windows = [Window(period_start, period_end, {})]
    groups = [GROUP_FIELDS[g] for g in GROUP_KEYS if g in query.group_by and g != "day"]
    lines = await repo.settled_lines(gw.db, windows, groups, query.merchant_id)
    lines.sort(key=_sort_key)
    return FeeReport(
        query=query,
        period_start=period_start,
        period_end=period_end,
        lines=tuple(lines),
        totals=_totals(lines),
    )


# --- rendering ---------------------------------------------------------------------------

_MERCHANT_FIELDS = ("transfer_count", "volume", "fees")
_OPERATOR_FIELDS = (*_MERCHANT_FIELDS, "channel_cost", "margin")


def _amount_fields(operator: bool) -> tuple[str, ...]:
    # Channel cost and margin are Paymux's business, never a merchant's.
    return _OPERATOR_FIELDS if operator else _MERCHANT_FIELDS


def line_view(line: FeeReportLine, *, operator: bool) -> dict[str, Any]:
    view: dict[str, Any] = dict(line.group)
    view["currency"] = line.currency
    for name in _amount_fields(operator):
        view[name] = getattr(line, name)
    return view


def report_view(report: FeeReport, *, operator: bool) -> dict[str, Any]:
    q = report.query
    return {
        "object": "fee_report",
        "from": q.first_day.isoformat(),
        "to": q.last_day.isoformat(),
        "timezone": q.timezone.key,
        "period_start": iso(report.period_start),
        "period_end": iso(report.period_end),
        "group_by": list(q.group_by),
        "merchant_id": q.merchant_id,
        "data": [line_view(line, operator=operator) for line in report.lines],
        "totals": [line_view(line, operator=operator) for line in report.totals],
    }


def report_csv(report: FeeReport, *, operator: bool) -> str:
    """Header row, one row per line, then one ``total`` row per currency (integers in
    minor units; the ``line`` column says which kind of row it is)."""
    groups = [GROUP_FIELDS[g] for g in GROUP_KEYS if g in report.query.group_by]
    amounts = list(_amount_fields(operator))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["line", *groups, "currency", *amounts])
    for kind, lines in (("group", report.lines), ("total", report.totals)):
        for line in lines:
            writer.writerow(
                [
                    kind,
                    *(line.group.get(g, "") for g in groups),
                    line.currency,
                    *(getattr(line, a) for a in amounts),
                ]
            )
    return out.getvalue()


__all__ = [
    "DEFAULT_GROUP_BY",
    "GROUP_FIELDS",
    "GROUP_KEYS",
    "MAX_DAYS",
    "FeeReport",
    "FeeReportLine",
    "FeeReportQuery",
    "business_day_start",
    "fee_report",
    "line_view",
    "parse_business_day",
    "parse_group_by",
    "parse_timezone",
    "report_csv",
    "report_view",
]
