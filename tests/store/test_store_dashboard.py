"""The dashboard's reads and its one write path, on the real database: channel calls are
recorded where the channel is called, the timeline and search are scoped to a merchant,
keyset pages do not overlap, and the overview's figures are exact."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from paymux.domain.outcomes import Outcome
from paymux.service import dashboard as svc
from paymux.service.errors import NotFound
from paymux.service.gateway import Gateway
from paymux.store import dashboard_repo as repo
from paymux.store.channel_calls import calls_for_transfer
from tests.store.store_support import new_funded_merchant, transfer


async def test_send_and_query_are_recorded_as_channel_calls(gw: Gateway) -> None:
    merchant = await new_funded_merchant(gw, 1_000_000)
    created = await transfer(gw, merchant, 10_000, Outcome.PROCESSING)
    tid = created.transfer.id
    answer = await svc.query_channel_now(gw, tid)  # the scripted channel says PROCESSING
    assert (answer.before, answer.after, answer.outcome) == (
        "processing",
        "processing",
        "processing",
    )
    await gw.call_log.flush(gw.db)
    async with gw.db.read() as conn:
        calls = await calls_for_transfer(conn, tid)
    assert [(c.kind, c.channel, c.outcome) for c in calls] == [
        ("send", "alipay", "processing"),
        ("query", "alipay", "processing"),
    ]
    assert calls[0].channel_order_id == f"ALIPAY{created.transfer.channel_reference}"
    assert all(c.latency_ms >= 0 and c.started_at.tzinfo is not None for c in calls)


async def test_timeline_shows_operators_everything_and_merchants_their_own(gw: Gateway) -> None:
    merchant = await new_funded_merchant(gw, 1_000_000)
    other = await new_funded_merchant(gw, 1_000_000)
    tid = (await transfer(gw, merchant, 10_000, Outcome.SUCCEEDED)).transfer.id

    _, ops = await svc.timeline(gw, tid, None, operator=True)
    kinds = [i.kind for i in ops]
    assert kinds[0] == "created"
    assert {"call", "status", "ledger", "webhook"} <= set(kinds)
    assert [i.at for i in ops] == sorted(i.at for i in ops)
    settle = next(i for i in ops if i.title == "Ledger entry: settle")
    assert any(label.startswith("fee_revenue:") for label, _ in settle.rows)
    # Every entry on the page balances: what the operator sees sums to zero.
    for item in (i for i in ops if i.kind == "ledger"):
        total = sum(int(v.replace(",", "").replace(".", "")) for _, v in item.rows)
        assert total == 0, item

    _, mine = await svc.timeline(gw, tid, merchant, operator=False)
    labels = [label for i in mine if i.kind == "ledger" for label, _ in i.rows]
    assert labels and all(label.startswith("merchant_") for label in labels)
    assert all(":" not in label for label in labels)  # no account keys, no other owners
    assert all(i.raw is None for i in mine)

    with pytest.raises(NotFound):
        await svc.timeline(gw, tid, other, operator=False)


async def test_search_is_scoped_and_keyset_pages_do_not_overlap(gw: Gateway) -> None:
    a = await new_funded_merchant(gw, 1_000_000)
    b = await new_funded_merchant(gw, 1_000_000)
    mine = [(await transfer(gw, a, 1_000 + n, Outcome.SUCCEEDED)).transfer for n in range(5)]
    theirs = (await transfer(gw, b, 2_000, Outcome.SUCCEEDED)).transfer

    seen: list[str] = []
    before = None
    while True:
        rows, more = await svc.search_transfers(
            gw, repo.TransferSearch(merchant_id=a, before_id=before, limit=2)
        )
        seen += [r["id"] for r in rows]
        if not more:
            break
        before = rows[-1]["id"]
    assert seen == sorted((r.id for r in mine), reverse=True)

    async def find(text: str, scope: str | None) -> list[str]:
        rows, _ = await svc.search_transfers(gw, repo.TransferSearch(merchant_id=scope, text=text))
        return [r["id"] for r in rows]

    target = mine[2]
    assert await find(target.id, a) == [target.id]
    assert await find(target.channel_reference, a) == [target.id]
    assert await find(target.channel_order_id, None) == [target.id]
    assert await find(target.idempotency_key, a) == [target.id]
    assert await find(theirs.id, a) == []  # another merchant's id finds nothing
    assert await find(theirs.id, None) == [theirs.id]
    failed, _ = await svc.search_transfers(gw, repo.TransferSearch(merchant_id=a, status="failed"))
    assert failed == []


async def test_overview_figures_are_exact(gw: Gateway, clock: Callable[[datetime], None]) -> None:
    # A day of its own, far from the other tests' transfers.
    day = datetime(2031, 3, 10, 4, 0, tzinfo=UTC)
    clock(day)
    merchant = await new_funded_merchant(gw, 10_000_000)
    paid = [await transfer(gw, merchant, amount, Outcome.SUCCEEDED) for amount in (10_000, 25_000)]
    await transfer(gw, merchant, 7_000, Outcome.FAILED)
    clock(day + timedelta(minutes=5))
    await transfer(gw, merchant, 3_000, Outcome.PROCESSING)
    clock(day + timedelta(hours=2))

    ov = await svc.overview(gw, merchant)
    today = ov.today
    assert ov.days[-1].day.isoformat() == "2031-03-10"  # business day in Asia/Shanghai
    assert (today.count, today.settled, today.failed) == (4, 2, 1)
    assert today.volume == 35_000
    assert today.fees == sum(c.transfer.fee for c in paid)
    assert today.channel_cost == sum(c.transfer.channel_cost for c in paid)
    assert today.success_rate == Decimal("66.7")
    assert ov.period.volume == 35_000  # nothing else in the 30 days for this merchant
    assert ov.in_flight.counts == {"processing": 1}
    assert ov.in_flight.oldest == day + timedelta(minutes=5)
    assert ov.oldest_age_seconds() == 115 * 60
    assert ov.days[-1].by_channel["alipay"].count == 4
