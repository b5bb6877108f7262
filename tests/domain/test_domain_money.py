"""Money: amount checks and exact major/minor conversion."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paymux.domain.money import (
    CURRENCY_EXPONENTS,
    MAX_AMOUNT,
    SUPPORTED_CURRENCIES,
    MoneyError,
    check_amount,
    format_minor,
    parse_major,
)


def test_cny_is_supported_with_two_decimals() -> None:
    assert CURRENCY_EXPONENTS["CNY"] == 2
    assert "CNY" in SUPPORTED_CURRENCIES


@pytest.mark.parametrize("amount", [1, 100, MAX_AMOUNT])
def test_check_amount_accepts_positive_ints(amount: int) -> None:
    assert check_amount(amount) == amount
    assert type(check_amount(amount)) is int


@pytest.mark.parametrize(
    "amount",
    [0, -1, MAX_AMOUNT + 1, True, False, 1.0, 100.0, Decimal(100), "100", None, [1]],
)
def test_check_amount_refuses_everything_else(amount: object) -> None:
    with pytest.raises(MoneyError):
        check_amount(amount)


def test_money_error_is_a_value_error() -> None:
    assert issubclass(MoneyError, ValueError)


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (1234, "12.34"),
        (0, "0.00"),
        (1, "0.01"),
        (10, "0.10"),
        (100, "1.00"),
        (-1, "-0.01"),
        (-1234, "-12.34"),
        (MAX_AMOUNT, "100000000000.00"),
    ],
)
def test_format_minor(amount: int, text: str) -> None:
    assert format_minor(amount, "CNY") == text


def test_format_minor_refuses_non_ints_and_unknown_currency() -> None:
    with pytest.raises(MoneyError):
        format_minor(1.5, "CNY")  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        format_minor(True, "CNY")
    with pytest.raises(MoneyError):
        format_minor(100, "XXX")


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("12.34", 1234),
        ("12.3", 1230),
        ("12", 1200),
        ("0.01", 1),
        ("0", 0),
        ("-0.01", -1),
        ("007.50", 750),
        ("100000000000.00", MAX_AMOUNT),
    ],
)
def test_parse_major(text: str, amount: int) -> None:
    assert parse_major(text, "CNY") == amount


@pytest.mark.parametrize(
    "text",
    [
        "12.345",  # more decimals than CNY has: never rounded
        "0.001",
        "1e2",
        "1E2",
        "1.5e1",
        "NaN",
        "nan",
        "Infinity",
        "-Infinity",
        "inf",
        "",
        " 1.00",
        "1.00 ",
        "1.00\n",
        "+1.00",
        "1,000.00",
        "1.",
        ".5",
        "-",
        "1_000",
        "١٢",  # non-ASCII digits
        "0x10",
        "1" * 41,
    ],
)
def test_parse_major_is_strict(text: str) -> None:
    with pytest.raises(MoneyError):
        parse_major(text, "CNY")


def test_parse_major_refuses_non_strings_and_unknown_currency() -> None:
    with pytest.raises(MoneyError):
        parse_major(12.34, "CNY")  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        parse_major(Decimal("12.34"), "CNY")  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        parse_major("12.34", "USD")


@given(st.integers(min_value=-(10**20), max_value=10**20))
def test_format_then_parse_round_trips(amount: int) -> None:
    text = format_minor(amount, "CNY")
    assert parse_major(text, "CNY") == amount
    assert Decimal(text) * 100 == amount


@given(st.integers(min_value=0, max_value=10**15), st.integers(min_value=0, max_value=99))
def test_parse_agrees_with_decimal(whole: int, cents: int) -> None:
    text = f"{whole}.{cents:02d}"
    assert parse_major(text, "CNY") == whole * 100 + cents
