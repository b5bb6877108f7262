"""Random sequences of top-ups, transfers and channel outcomes on the real database.

Outcomes arrive at send time, later (after ``processing``), twice, and out of order. After
every step the database must agree with a small model written here from the rules in
DESIGN.md (not from paymux.domain), and ``LedgerRepo.check`` must find nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from paymux.channels.base import ChannelResult
from paymux.domain.outcomes import Outcome
from paymux.service.errors import InsufficientFundsError
from paymux.service.gateway import Gateway
from paymux.service.transfers import apply_result
from paymux.store.ledger_repo import LedgerRepo
from paymux.store.tables import transfers
from tests.store.store_support import (
    ALIPAY_ACCOUNT_COST,
    SCRIPTABLE,
    account_balances,
    alipay_account_fee,
    new_funded_merchant,
    posted_balances,
    topup,
    transfer,
)


@dataclass(frozen=True)
class TopUp:
    amount: int


@dataclass(frozen=True)
class Send:
    amount: int
    outcome: Outcome  # what the channel answers to the send


@dataclass(frozen=True)
class Later:
    pick: int  # which transfer (modulo how many exist)
    outcome: Outcome  # a callback or query result arriving afterwards


Step = TopUp | Send | Later

outcomes = st.sampled_from(SCRIPTABLE)
steps = st.one_of(
    st.builds(TopUp, st.integers(1, 40_000)),
    st.builds(Send, st.integers(1, 30_000), outcomes),
    st.builds(Later, st.integers(0, 50), outcomes),
    st.builds(Later, st.integers(0, 50), outcomes),  # weighted: outcomes race more often
)

# status -> outcome -> the statuses a transfer passes through (none listed: no-op)
MOVES: dict[str, dict[Outcome, tuple[str, ...]]] = {
    "pending": {
        Outcome.PROCESSING: ("processing",),
        Outcome.SUCCEEDED: ("succeeded",),
        Outcome.FAILED: ("failed",),
        Outcome.RETURNED: ("succeeded", "returned"),
    },
    "processing": {
        Outcome.SUCCEEDED: ("succeeded",),
        Outcome.FAILED: ("failed",),
        Outcome.RETURNED: ("succeeded", "returned"),
    },
    "succeeded": {Outcome.RETURNED: ("returned",)},
    "failed": {},
    "returned": {},
}


@dataclass
class Model:
    """What the merchant's and the house's accounts must hold (house ones as deltas)."""

    available: int = 0
    held: int = 0
    fee_revenue: int = 0
    channel_cost: int = 0  # expense account: runs negative
    clearing: int = 0
    transfers: list[tuple[str, int, int]] = field(default_factory=list)  # id, amount, fee
    status: dict[str, str] = field(default_factory=dict)

    def move(self, transfer_id: str, amount: int, fee: int, outcome: Outcome) -> None:
        for target in MOVES[self.status[transfer_id]].get(outcome, ()):
            if target == "succeeded":
                self.held -= amount + fee
                self.clearing += amount + ALIPAY_ACCOUNT_COST
                self.fee_revenue += fee
                self.channel_cost -= ALIPAY_ACCOUNT_COST
            elif target == "failed":
                self.held -= amount + fee
                self.available += amount + fee
            elif target == "returned":  # the fee is kept, the cost not recovered
                self.clearing -= amount
                self.available += amount
            self.status[transfer_id] = target


HOUSE = ("fee_revenue:CNY", "channel_cost:CNY", "channel_clearing:alipay:CNY")


async def assert_agrees(gw: Gateway, merchant: str, model: Model, base: dict[str, int]) -> None:
    cached = await account_balances(gw)
    assert cached[f"merchant_available:{merchant}:CNY"] == model.available
    async with gw.db.read() as conn:
        in_flight = await gw.ledger.held_by_merchant(conn, merchant)
    assert in_flight.get((merchant, "CNY"), 0) == model.held
    posted = await posted_balances(gw)
    assert posted.get(f"merchant_available:{merchant}:CNY", 0) == model.available
    assert posted.get(f"merchant_held:{merchant}:CNY", 0) == model.held
    delta = {k: posted.get(k, 0) - base.get(k, 0) for k in HOUSE}
    assert delta == {
        "fee_revenue:CNY": model.fee_revenue,
        "channel_cost:CNY": model.channel_cost,
        "channel_clearing:alipay:CNY": model.clearing,
    }
    async with gw.db.read() as conn:
        rows = await conn.execute(
            select(transfers.c.id, transfers.c.status).where(transfers.c.merchant_id == merchant)
        )
        assert dict(rows.all()) == model.status
        assert await LedgerRepo.check(conn) == []


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(opening=st.integers(0, 60_000), plan=st.lists(steps, min_size=1, max_size=12))
async def test_random_sequences_keep_the_ledger_sound(
    gw: Gateway, opening: int, plan: list[Step]
) -> None:
    base = await posted_balances(gw)  # house accounts are shared: compare deltas
    merchant = await new_funded_merchant(gw, opening, "sequence")
    model = Model(available=opening)
    for step in plan:
        if isinstance(step, TopUp):
            await topup(gw, merchant, step.amount)
            model.available += step.amount
        elif isinstance(step, Send):
            fee = alipay_account_fee(step.amount)
            if step.amount + fee > model.available:
                try:
                    await transfer(gw, merchant, step.amount, step.outcome)
                except InsufficientFundsError:
                    pass
                else:
                    raise AssertionError(f"{step} was accepted with {model.available} available")
            else:
                created = await transfer(gw, merchant, step.amount, step.outcome)
                tid = created.transfer.id
                assert created.transfer.fee == fee
                model.available -= step.amount + fee
                model.held += step.amount + fee
                model.transfers.append((tid, step.amount, fee))
                model.status[tid] = "pending"
                model.move(tid, step.amount, fee, step.outcome)
                assert created.transfer.status == model.status[tid]
        elif model.transfers:
            tid, amount, fee = model.transfers[step.pick % len(model.transfers)]
            row = await apply_result(gw, tid, ChannelResult(step.outcome), source="test")
            model.move(tid, amount, fee, step.outcome)
            assert row.status == model.status[tid]
        await assert_agrees(gw, merchant, model, base)
