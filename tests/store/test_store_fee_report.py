"""GET /v1/reports/fees over a generated pair of business days.

Transfers of two merchants are created and resolved at scripted instants (the gateway's
clock is moved in-process) around midnight in Asia/Shanghai, including every edge of the
period. The report must equal sums made here from the transfer rows and the ledger's
fee_revenue / channel_cost postings of the period, in JSON and in CSV, and a merchant must
never see another's lines.
"""

from __future__ import annotations

import csv
import io
import random
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select

from paymux.channels.base import ChannelResult
from paymux.domain.outcomes import Outcome
from paymux.domain.payees import PayeeType
from paymux.service.gateway import Gateway, utcnow
from paymux.service.merchants import create_merchant
from paymux.service.transfers import apply_result
from paymux.store.ledger_repo import LedgerRepo
from paymux.store.tables import journal_entries, postings, transfers
from tests.store.store_support import ADMIN, bearer, topup, transfer

SHANGHAI = ZoneInfo("Asia/Shanghai")
D1, D2 = date(2031, 3, 1), date(2031, 3, 2)  # the reported business days
PERIOD = {"from": D1.isoformat(), "to": D2.isoformat()}
ALL_GROUPS = "day,merchant,channel,payee_type"
AMOUNTS = ("transfer_count", "volume", "fees", "channel_cost", "margin")


def local(day: date, hour: int, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, micro, tzinfo=SHANGHAI)


MIDNIGHT_D1 = local(D1, 0)
MIDNIGHT_D3 = local(D2, 0) + timedelta(days=1)


@dataclass(frozen=True)
class Plan:
    """One transfer: sent at ``at`` (the channel answers ``send``), then ``later`` outcomes."""

    merchant: int  # index into the scenario's merchants
    payee_type: PayeeType
    amount: int
    at: datetime
    send: Outcome
    later: tuple[tuple[datetime, Outcome], ...] = ()


@dataclass
class Scenario:
    merchants: list[str]
    keys: list[str]
    settled_at: dict[str, datetime] = field(default_factory=dict)  # as the script says


def edge_plans() -> list[Plan]:
    card, alipay, wechat = PayeeType.BANK_CARD, PayeeType.ALIPAY_ACCOUNT, PayeeType.WECHAT_OPENID
    ok, fail, proc, ret = Outcome.SUCCEEDED, Outcome.FAILED, Outcome.PROCESSING, Outcome.RETURNED
    return [
        Plan(0, alipay, 10_001, MIDNIGHT_D1 - timedelta(microseconds=1), ok),  # day before
        Plan(0, alipay, 10_002, MIDNIGHT_D1, ok),  # first instant of D1
        Plan(1, wechat, 10_003, local(D1, 23, 50), ok),  # 15:50Z on 2031-03-01
        Plan(1, wechat, 10_004, local(D2, 0, 10), ok),  # 16:10Z, same UTC day, next D
        Plan(0, card, 10_005, local(D1, 23, 55), proc, ((local(D2, 0, 5), ok),)),  # -> D2
        Plan(0, alipay, 10_006, local(D1, 22), ok, ((local(D2, 9), ret),)),  # bounce: D1
        Plan(1, card, 10_007, local(D1, 12), fail),
        Plan(1, alipay, 10_008, local(D1, 13), proc, ((local(D1, 14), fail),)),
        Plan(0, wechat, 10_009, local(D2, 23, 59, 59, 999_999), ok),  # last instant of D2
        Plan(0, wechat, 10_010, MIDNIGHT_D3, ok),  # day after
        Plan(1, alipay, 10_011, local(D2, 23, 30), proc, ((MIDNIGHT_D3, ok),)),  # settles D3
        Plan(1, alipay, 10_012, local(D2, 8), proc),  # never resolved
        Plan(0, card, 10_013, local(D2, 9), ret),  # paid and bounced at once
    ]


def random_plans(rng: random.Random, count: int) -> list[Plan]:
    start = MIDNIGHT_D1 - timedelta(hours=3)
    span = int((MIDNIGHT_D3 + timedelta(hours=3) - start).total_seconds())
    kinds = [
        (Outcome.SUCCEEDED, None),
        (Outcome.FAILED, None),
        (Outcome.RETURNED, None),
        (Outcome.SUCCEEDED, Outcome.RETURNED),
        (Outcome.PROCESSING, Outcome.SUCCEEDED),
        (Outcome.PROCESSING, Outcome.FAILED),
        (Outcome.PROCESSING, Outcome.RETURNED),
        (Outcome.PROCESSING, None),
    ]
    plans = []
    for _ in range(count):
        at = start + timedelta(seconds=rng.randrange(span), microseconds=rng.randrange(10**6))
        send, then = rng.choice(kinds)
        later: list[tuple[datetime, Outcome]] = []
        if then is not None:
            later.append((at + timedelta(minutes=rng.randint(1, 240)), then))
            if rng.random() < 0.3:  # a duplicate or contradicting late notification
                later.append((later[0][0] + timedelta(minutes=5), rng.choice(list(Outcome)[:4])))
        plans.append(
            Plan(
                merchant=rng.randrange(2),
                payee_type=rng.choice(list(PayeeType)),
                amount=rng.randint(100, 500_000),
                at=at,
                send=send,
                later=tuple(later),
            )
        )
    return plans


async def run_plans(gw: Gateway, scenario: Scenario, plans: Iterable[Plan]) -> None:
    """Play every send and later outcome in time order, with the gateway's clock at it."""
    events: list[tuple[datetime, int, Callable[[], Any]]] = []
    ids: dict[int, str] = {}

    def send_event(n: int, plan: Plan) -> Callable[[], Any]:
        async def go() -> None:
            created = await transfer(
                gw, scenario.merchants[plan.merchant], plan.amount, plan.send, plan.payee_type
            )
            ids[n] = created.transfer.id
            if created.transfer.status in ("succeeded", "returned"):
                scenario.settled_at[ids[n]] = plan.at

        return go

    def later_event(n: int, at: datetime, outcome: Outcome) -> Callable[[], Any]:
        async def go() -> None:
            before = (await _status(gw, ids[n]), ids[n])
            row = await apply_result(gw, ids[n], ChannelResult(outcome), source="test")
            if before[0] in ("pending", "processing") and row.status in (
                "succeeded",
                "returned",
            ):
                scenario.settled_at[ids[n]] = at

        return go

    for n, plan in enumerate(plans):
        events.append((plan.at, len(events), send_event(n, plan)))
        for at, outcome in plan.later:
            events.append((at, len(events), later_event(n, at, outcome)))
    for at, _, go in sorted(events, key=lambda e: (e[0], e[1])):
        gw.clock = fixed_clock(at)
        await go()


def fixed_clock(at: datetime) -> Callable[[], datetime]:
    instant = at.astimezone(UTC)
    return lambda: instant


async def _status(gw: Gateway, transfer_id: str) -> str:
    async with gw.db.read() as conn:
        found = await conn.execute(select(transfers.c.status).where(transfers.c.id == transfer_id))
        return str(found.scalar_one())


@pytest.fixture(scope="module")
async def scenario(gw: Gateway) -> AsyncIterator[Scenario]:
    gw.clock = fixed_clock(MIDNIGHT_D1 - timedelta(days=1))
    try:
        merchants, keys = [], []
        for name in ("Report A", "Report B"):
            row, secret = await create_merchant(gw, name)
            await topup(gw, row["id"], 50_000_000)
            merchants.append(row["id"])
            keys.append(secret)
        s = Scenario(merchants=merchants, keys=keys)
        await run_plans(gw, s, edge_plans() + random_plans(random.Random(7), 60))
        yield s
    finally:
        gw.clock = utcnow


# --- expectations from the transfer rows and the ledger -----------------------------------


async def settled_rows(gw: Gateway, scenario: Scenario) -> list[dict[str, Any]]:
    """Transfers that were paid (a bounce keeps its fee), with the instant they settled."""
    async with gw.db.read() as conn:
        rows = [
            dict(r)
            for r in (
                await conn.execute(
                    select(transfers).where(
                        transfers.c.merchant_id.in_(scenario.merchants),
                        transfers.c.status.in_(["succeeded", "returned"]),
                    )
                )
            ).mappings()
        ]
    # completed_at is stamped when a transfer settles and kept through a bounce.
    assert {r["id"]: r["completed_at"] for r in rows} == scenario.settled_at
    return rows


def expected_lines(
    rows: Iterable[dict[str, Any]],
    groups: tuple[str, ...],
    tz: ZoneInfo = SHANGHAI,
    first: date = D1,
    last: date = D2,
) -> dict[tuple[str, ...], dict[str, int]]:
    out: dict[tuple[str, ...], dict[str, int]] = defaultdict(lambda: dict.fromkeys(AMOUNTS, 0))
    for r in rows:
        day = r["completed_at"].astimezone(tz).date()
        if not first <= day <= last:
            continue
        values = {
            "day": day.isoformat(),
            "merchant_id": r["merchant_id"],
            "channel": r["channel"],
            "payee_type": r["payee_type"],
        }
        line = out[tuple(values[g] for g in groups)]
        line["transfer_count"] += 1
        line["volume"] += r["amount"]
        line["fees"] += r["fee"]
        line["channel_cost"] += r["channel_cost"]
        line["margin"] += r["fee"] - r["channel_cost"]
    return dict(out)


def as_lines(
    data: list[dict[str, Any]], groups: tuple[str, ...], amounts: tuple[str, ...] = AMOUNTS
) -> dict[tuple[str, ...], dict[str, int]]:
    lines = {tuple(d[g] for g in groups): {a: d[a] for a in amounts} for d in data}
    assert len(lines) == len(data), "one line per group"
    assert all(d["currency"] == "CNY" for d in data)
    return lines


def only(expected: dict[tuple[str, ...], dict[str, int]], amounts: tuple[str, ...]) -> Any:
    return {k: {a: v[a] for a in amounts} for k, v in expected.items()}


def summed(lines: Iterable[dict[str, int]], amounts: tuple[str, ...] = AMOUNTS) -> dict[str, int]:
    return {a: sum(line[a] for line in lines) for a in amounts}


async def ledger_sums(gw: Gateway, merchant_id: str | None = None) -> tuple[int, int]:
    """(fee_revenue, channel_cost) posted by entries created in the period (cost as a
    positive number)."""
    start, end = MIDNIGHT_D1.astimezone(UTC), MIDNIGHT_D3.astimezone(UTC)
    totals = []
    for key in ("fee_revenue:CNY", "channel_cost:CNY"):
        stmt = (
            select(func.coalesce(func.sum(postings.c.amount), 0))
            .select_from(
                postings.join(journal_entries, journal_entries.c.id == postings.c.entry_id)
            )
            .where(
                postings.c.account_key == key,
                journal_entries.c.created_at >= start,
                journal_entries.c.created_at < end,
            )
        )
        if merchant_id is not None:
            stmt = stmt.where(journal_entries.c.merchant_id == merchant_id)
        async with gw.db.read() as conn:
            totals.append(int((await conn.execute(stmt)).scalar_one()))
    return totals[0], -totals[1]


async def report(api: httpx.AsyncClient, headers: dict[str, str], **params: str) -> Any:
    resp = await api.get("/v1/reports/fees", params={**PERIOD, **params}, headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    return resp.json()


# --- tests -----------------------------------------------------------------------------


async def test_operator_report_equals_transfer_rows_and_ledger(
    gw: Gateway, api: httpx.AsyncClient, scenario: Scenario
) -> None:
    rows = await settled_rows(gw, scenario)
    groups = ("day", "merchant_id", "channel", "payee_type")
    body = await report(api, ADMIN, group_by=ALL_GROUPS)
    expected = expected_lines(rows, groups)
    assert as_lines(body["data"], groups) == expected
    assert len({k[0] for k in expected}) == 2 and len({k[2] for k in expected}) == 2
    assert len({k[3] for k in expected}) == 3

    (totals,) = body["totals"]
    assert totals["currency"] == "CNY"
    assert {a: totals[a] for a in AMOUNTS} == summed(expected.values())
    fee_revenue, channel_cost = await ledger_sums(gw)
    assert (totals["fees"], totals["channel_cost"]) == (fee_revenue, channel_cost)
    assert totals["margin"] == fee_revenue - channel_cost
    assert body["period_start"] == "2031-02-28T16:00:00Z"
    assert body["period_end"] == "2031-03-02T16:00:00Z"
    assert body["timezone"] == "Asia/Shanghai"
    async with gw.db.read() as conn:
        assert await LedgerRepo.check(conn) == []


async def test_days_are_business_days_of_the_requested_zone(
    gw: Gateway, api: httpx.AsyncClient, scenario: Scenario
) -> None:
    rows = await settled_rows(gw, scenario)
    by_day = await report(api, ADMIN)  # default: group_by=day, Asia/Shanghai
    assert by_day["group_by"] == ["day"]
    assert as_lines(by_day["data"], ("day",)) == expected_lines(rows, ("day",))

    utc = await report(api, ADMIN, tz="UTC")
    assert as_lines(utc["data"], ("day",)) == expected_lines(rows, ("day",), ZoneInfo("UTC"))
    # Midnight in Shanghai is 16:00Z: the two zones disagree on where the edge rows belong.
    assert utc["data"] != by_day["data"]

    flat = await report(api, ADMIN, group_by="channel")
    assert as_lines(flat["data"], ("channel",)) == expected_lines(rows, ("channel",))
    assert flat["totals"] == by_day["totals"]
    no_groups = await report(api, ADMIN, group_by="")
    assert [{a: d[a] for a in AMOUNTS} for d in no_groups["data"]] == [
        {a: no_groups["totals"][0][a] for a in AMOUNTS}
    ]


async def test_merchants_see_only_their_own_lines(
    gw: Gateway, api: httpx.AsyncClient, scenario: Scenario
) -> None:
    rows = await settled_rows(gw, scenario)
    groups = ("day", "channel", "payee_type")
    merchant_amounts = ("transfer_count", "volume", "fees")
    for me, key, other in zip(
        scenario.merchants, scenario.keys, reversed(scenario.merchants), strict=True
    ):
        mine = [r for r in rows if r["merchant_id"] == me]
        body = await report(api, bearer(key), group_by="day,channel,payee_type")
        assert body["merchant_id"] == me
        expected = only(expected_lines(mine, groups), merchant_amounts)
        assert as_lines(body["data"], groups, merchant_amounts) == expected
        for line in [*body["data"], *body["totals"]]:
            assert "channel_cost" not in line and "margin" not in line
            assert "merchant_id" not in line
        assert body["totals"][0]["fees"] == (await ledger_sums(gw, me))[0]
        assert body["totals"][0]["fees"] == summed(expected.values(), merchant_amounts)["fees"]

        # The operator's view of this merchant is the same lines, plus cost and margin.
        operator = await report(api, ADMIN, merchant_id=me, group_by="day,channel,payee_type")
        assert as_lines(operator["data"], groups) == expected_lines(mine, groups)

        explicit = await report(api, bearer(key), merchant_id=me)
        assert explicit["totals"] == (await report(api, bearer(key)))["totals"]
        denied = await api.get(
            "/v1/reports/fees", params={**PERIOD, "merchant_id": other}, headers=bearer(key)
        )
        assert denied.status_code == 404
        assert denied.headers["content-type"] == "application/problem+json"
        assert other not in denied.text.replace(f"no merchant {other}", "")
        refused = await api.get(
            "/v1/reports/fees", params={**PERIOD, "group_by": "merchant"}, headers=bearer(key)
        )
        assert refused.status_code == 422


async def test_csv_parses_to_the_same_numbers(api: httpx.AsyncClient, scenario: Scenario) -> None:
    groups = ("day", "merchant_id", "channel", "payee_type")
    body = await report(api, ADMIN, group_by=ALL_GROUPS)
    for how in ({"format": "csv"}, {}):
        headers = {**ADMIN, "Accept": "text/csv"} if not how else ADMIN
        resp = await api.get(
            "/v1/reports/fees", params={**PERIOD, "group_by": ALL_GROUPS, **how}, headers=headers
        )
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"].startswith("text/csv")
        reader = csv.DictReader(io.StringIO(resp.text))
        assert reader.fieldnames == ["line", *groups, "currency", *AMOUNTS]
        parsed = list(reader)
        lines = [{**r, **{a: int(r[a]) for a in AMOUNTS}} for r in parsed if r["line"] == "group"]
        totals = [r for r in parsed if r["line"] == "total"]
        assert as_lines(lines, groups) == as_lines(body["data"], groups)
        assert [{a: int(t[a]) for a in AMOUNTS} for t in totals] == [
            {a: t[a] for a in AMOUNTS} for t in body["totals"]
        ]
        assert totals[0]["currency"] == "CNY" and totals[0]["day"] == ""

    merchant_csv = await api.get(
        "/v1/reports/fees",
        params={**PERIOD, "format": "csv"},
        headers=bearer(scenario.keys[0]),
    )
    header = merchant_csv.text.splitlines()[0]
    assert header == "line,day,currency,transfer_count,volume,fees"
    assert scenario.merchants[1] not in merchant_csv.text


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2031-02-30", "to": "2031-03-02"},
        {"from": "2031-3-1", "to": "2031-03-02"},
        {"from": "20310301", "to": "2031-03-02"},
        {"from": "2031-03-02", "to": "2031-03-01"},
        {"from": "2030-01-01", "to": "2031-03-02"},
        {"from": "2031-03-01"},
        {"from": "2031-03-01", "to": "2031-03-02", "tz": "Mars/Olympus_Mons"},
        {"from": "2031-03-01", "to": "2031-03-02", "group_by": "hour"},
        {"from": "2031-03-01", "to": "2031-03-02", "group_by": "day,day"},
        {"from": "2031-03-01", "to": "2031-03-02", "format": "xml"},
    ],
)
async def test_invalid_queries_are_422_problems(
    api: httpx.AsyncClient, params: dict[str, str]
) -> None:
    resp = await api.get("/v1/reports/fees", params=params, headers=ADMIN)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert {"type", "title", "status", "detail", "code"} <= resp.json().keys()


async def test_report_needs_a_key_and_a_real_merchant(api: httpx.AsyncClient) -> None:
    assert (await api.get("/v1/reports/fees", params=PERIOD)).status_code == 401
    missing = await api.get(
        "/v1/reports/fees", params={**PERIOD, "merchant_id": "mer_nobody"}, headers=ADMIN
    )
    assert missing.status_code == 404
