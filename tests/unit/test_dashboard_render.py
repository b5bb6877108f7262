"""Formatting on dashboard pages: exact money text, ages, query strings, CSRF comparison."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paymux.api.dashboard.render import age, money, qs
from paymux.api.dashboard.sessions import Session, csrf_ok
from paymux.domain.money import parse_major


@pytest.mark.parametrize(
    ("minor", "text"),
    [(0, "0.00"), (5, "0.05"), (123_456, "1,234.56"), (-100, "-1.00"), (None, "—")],
)
def test_money_text(minor: int | None, text: str) -> None:
    assert money(minor) == text


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_money_text_round_trips_to_the_same_minor_units(minor: int) -> None:
    assert parse_major(money(minor).replace(",", ""), "CNY") == minor


def test_age_and_query_string() -> None:
    assert [age(s) for s in (None, 5, 125, 7_300, 3 * 86_400 + 3_600)] == [
        "—",
        "5s",
        "2m 05s",
        "2h 01m",
        "3d 1h",
    ]
    assert qs({"q": "tr_1", "status": ""}, before="tr_0") == "q=tr_1&before=tr_0"


def test_csrf_token_must_match_exactly() -> None:
    session = Session(role="merchant", merchant_id="mer_1", name="m", csrf="abc", created=0.0)
    assert csrf_ok(session, "abc")
    assert not csrf_ok(session, "abd")
    assert not csrf_ok(session, None)
    assert not csrf_ok(session, "")
    assert session.scope == "mer_1"
    operator = Session(role="operator", merchant_id=None, name="o", csrf="x", created=0.0)
    assert operator.scope is None
