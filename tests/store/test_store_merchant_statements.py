"""Merchant statements over random sequences of operations spread across business days.

For every day: opening + movements = closing = the ledger's own sum of the merchant's
``available`` postings up to the day's end; each day opens where the previous one closed;
the day's settled fees equal the fee report's; the last closing equals the cached balance.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paymux.channels.base import ChannelResult
from paymux.domain.outcomes import Outcome
from paymux.service.errors import InsufficientFundsError
from paymux.service.gateway import Gateway, utcnow
from paymux.service.reports import FeeReportQuery, fee_report
from paymux.service.statements import merchant_statement
from paymux.service.transfers import apply_result
from tests.store.store_support import (
    SCRIPTABLE,
    account_balances,
    new_funded_merchant,
    topup,
    transfer,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAYS = (date(2033, 6, 1), date(2033, 6, 2), date(2033, 6, 3))


@dataclass(frozen=True)
class Op:
    day: int  # index into DAYS (the plan is sorted by it)
    kind: str  # topup | send | later
    amount: int
    outcome: Outcome
    pick: int


ops = st.builds(
    Op,
    st.integers(0, len(DAYS) - 1),
    st.sampled_from(("topup", "send", "send", "later")),
    st.integers(1, 30_000),
    st.sampled_from(SCRIPTABLE),
    st.integers(0, 50),
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(opening=st.integers(0, 50_000), plan=st.lists(ops, min_size=1, max_size=14))
async def test_statement_days_balance_against_the_ledger_and_fee_report(
    gw: Gateway, opening: int, plan: list[Op]
) -> None:
    merchant = await new_funded_merchant(gw, 0, "statement")
    sent: list[str] = []
    try:
        gw.clock = lambda: datetime(2033, 5, 31, 12, tzinfo=SHANGHAI)
        if opening:
            await topup(gw, merchant, opening)  # before the first day: the opening balance
        for n, op in enumerate(sorted(plan, key=lambda o: o.day)):
            at = datetime.combine(DAYS[op.day], datetime.min.time(), SHANGHAI)
            at += timedelta(minutes=7 * n + 1)
            gw.clock = lambda at=at: at
            if op.kind == "topup":
                await topup(gw, merchant, op.amount)
            elif op.kind == "send":
                try:
                    created = await transfer(gw, merchant, op.amount, op.outcome)
                except InsufficientFundsError:
                    continue
                sent.append(created.transfer.id)
            elif sent:
                await apply_result(
                    gw, sent[op.pick % len(sent)], ChannelResult(op.outcome), source="test"
                )
    finally:
        gw.clock = utcnow

    previous_close = opening
    for day in DAYS:
        s = await merchant_statement(gw, merchant, day)
        assert s.opening == previous_close
        assert s.opening + sum(m.amount for m in s.movements) == s.closing == s.ledger_closing
        assert s.balanced
        report = await fee_report(
            gw, FeeReportQuery(day, day, SHANGHAI, ("day",), merchant_id=merchant)
        )
        cny = next(t for t in report.totals if t.currency == "CNY")
        assert sum(f.fee for f in s.fees) == cny.fees
        assert {m.kind for m in s.movements} <= {"topup", "hold", "release", "reverse"}
        previous_close = s.closing
    cached = await account_balances(gw)
    assert cached[f"merchant_available:{merchant}:CNY"] == previous_close
