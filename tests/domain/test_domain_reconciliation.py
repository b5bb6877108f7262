"""Reconciliation matching rules and healing verdicts, and the ledger digest's hashing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paymux.domain.ledger_digest import GENESIS, EntryFacts, chain, leaf, merkle_root
from paymux.domain.outcomes import Outcome
from paymux.domain.reconciliation import (
    DiscrepancyKind,
    ReferenceLines,
    StatementDay,
    TransferFacts,
    heal_decision,
    judge,
    missing_in_statement,
)
from paymux.domain.statement_lines import StatementLine, StatementLineKind
from paymux.domain.states import TransferStatus

S = TransferStatus


def facts(status: TransferStatus, amount: int = 10_000, cost: int = 10) -> TransferFacts:
    return TransferFacts("tr_1", "mer_1", "REF1", "alipay", status, amount, "CNY", cost)


def lines(paid: int = 0, refunded: int = 0, fee: int = 0, currency: str = "CNY") -> ReferenceLines:
    return ReferenceLines("REF1", "2024", currency, paid=paid, refunded=refunded, fee=fee)


def kinds(found: list) -> list[str]:  # type: ignore[type-arg]
    return sorted(f.kind.value for f in found)


def test_a_clean_payment_and_a_clean_return_match() -> None:
    assert judge(lines(paid=10_000, fee=10), facts(S.succeeded), "alipay") == []
    assert judge(lines(paid=10_000, refunded=10_000, fee=10), facts(S.returned), "alipay") == []
    assert judge(lines(refunded=10_000), facts(S.returned), "alipay") == []  # next-day bounce


def test_each_class() -> None:
    assert kinds(judge(lines(paid=500, fee=1), None, "alipay")) == ["missing_in_paymux"]
    assert kinds(judge(lines(paid=500), facts(S.succeeded), "wechat")) == ["missing_in_paymux"]
    assert kinds(judge(lines(paid=10_000, fee=10), facts(S.failed), "alipay")) == [
        "status_mismatch"
    ]
    assert kinds(judge(lines(paid=10_000, fee=10), facts(S.processing), "alipay")) == [
        "status_mismatch"
    ]
    assert kinds(
        judge(lines(paid=10_000, refunded=10_000, fee=10), facts(S.succeeded), "alipay")
    ) == ["status_mismatch"]
    assert kinds(judge(lines(paid=10_001, fee=10), facts(S.succeeded), "alipay")) == [
        "amount_mismatch"
    ]
    assert kinds(
        judge(lines(paid=10_000, fee=10, currency="USD"), facts(S.succeeded), "alipay")
    ) == ["amount_mismatch"]
    assert kinds(judge(lines(paid=10_000, fee=12), facts(S.succeeded), "alipay")) == [
        "channel_fee_mismatch"
    ]
    assert kinds(judge(lines(paid=10_000), facts(S.succeeded, cost=10), "alipay")) == [
        "channel_fee_mismatch"  # the schedule says the channel charges; it did not
    ]
    gone = missing_in_statement(facts(S.succeeded), "2024-03-05")
    assert gone.kind is DiscrepancyKind.missing_in_statement and gone.paymux_amount == 10_000


@pytest.mark.parametrize(
    ("current", "answer", "verdict"),
    [
        (S.processing, Outcome.SUCCEEDED, "apply"),
        (S.processing, Outcome.FAILED, "apply"),
        (S.pending, Outcome.SUCCEEDED, "apply"),
        (S.succeeded, Outcome.RETURNED, "apply"),  # a silent bounce heals
        (S.failed, Outcome.SUCCEEDED, "critical"),  # paid what we released
        (S.failed, Outcome.RETURNED, "critical"),
        (S.succeeded, Outcome.FAILED, "critical"),  # WeChat FAIL after SUCCESS
        (S.succeeded, Outcome.SUCCEEDED, "agrees"),
        (S.returned, Outcome.SUCCEEDED, "agrees"),
        (S.processing, Outcome.PROCESSING, "unknown"),
        (S.processing, Outcome.NOT_FOUND, "unknown"),
    ],
)
def test_heal_decision(current: TransferStatus, answer: Outcome, verdict: str) -> None:
    assert heal_decision(current, answer) == verdict


amounts = st.integers(1, 10**9)


@given(st.lists(st.tuples(st.sampled_from(list(StatementLineKind)), amounts), max_size=40))
def test_statement_day_totals_equal_the_lines(spec: list[tuple[StatementLineKind, int]]) -> None:
    day = StatementDay()
    day.add_all(
        StatementLine(n + 1, kind, f"R{n % 5}", None, amount, "CNY", "2024-01-01 00:00:00")
        for n, (kind, amount) in enumerate(spec)
    )
    t = day.totals
    assert t.lines == len(spec)
    assert t.payment_total == sum(a for k, a in spec if k is StatementLineKind.PAYMENT)
    assert t.refund_total == sum(a for k, a in spec if k is StatementLineKind.REFUND)
    assert t.fee_total == sum(a for k, a in spec if k is StatementLineKind.FEE)
    per_ref = day.by_reference.values()
    assert sum(r.paid for r in per_ref) == t.payment_total
    assert sum(r.fee for r in per_ref) == t.fee_total


def _entry(n: int, amount: int = 100) -> EntryFacts:
    return EntryFacts(
        f"je_{n}", "hold", "mer", None, None, "CNY", "2024-01-01T00:00:00.000000+00:00",
        (("merchant_available:mer:CNY", -amount), ("merchant_held:mer:CNY", amount)),
    )  # fmt: skip


@given(st.integers(1, 20), st.data())
def test_any_edit_changes_the_root_and_the_chain(count: int, data: st.DataObject) -> None:
    entries = [_entry(n) for n in range(count)]
    root = merkle_root([leaf(e) for e in entries])
    victim = data.draw(st.integers(0, count - 1))
    edited = list(entries)
    edited[victim] = _entry(victim, amount=101)
    assert merkle_root([leaf(e) for e in edited]) != root
    assert merkle_root([leaf(e) for e in entries[:-1]]) != root  # a deleted entry
    assert chain("2024-01-01", count, root, GENESIS) != chain("2024-01-01", count, root, "1" * 64)
