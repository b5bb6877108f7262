"""Money as integer minor units (fen) plus an ISO 4217 currency code.

Amounts never exist as ``float``. Text in major units (yuan, as channels and humans write
it) is converted with :func:`parse_major` / :func:`format_minor`, which are exact and strict:
a string that is not exactly representable in minor units is refused, never rounded.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Mapping
from types import MappingProxyType

# Minor-unit exponent per supported currency (CNY: 1 yuan = 100 fen). Add a currency here.
CURRENCY_EXPONENTS: Mapping[str, int] = MappingProxyType({"CNY": 2})
SUPPORTED_CURRENCIES: frozenset[str] = frozenset(CURRENCY_EXPONENTS)

# 100 billion yuan: far above any single payout, far below anything that strains int columns.
MAX_AMOUNT = 10**13

# Longest major-unit text accepted; bounds parsing work on hostile input.
_MAX_TEXT_LENGTH = 40


class MoneyError(ValueError):
    """An amount, currency or money text that is not acceptable."""


def exponent(currency: str) -> int:
    """The minor-unit exponent of ``currency``; raises MoneyError if unsupported."""
    try:
        return CURRENCY_EXPONENTS[currency]
    except (KeyError, TypeError):
        raise MoneyError(f"unsupported currency: {currency!r}") from None


def check_currency(currency: object) -> str:
    """Return ``currency`` if it is a supported ISO 4217 code, else raise MoneyError."""
    if not isinstance(currency, str) or currency not in CURRENCY_EXPONENTS:
        raise MoneyError(f"unsupported currency: {currency!r}")
    return currency


def is_int(value: object) -> bool:
    """True for real integers only (``bool`` is an ``int`` subclass but never an amount)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_amount(amount: object) -> int:
    """Return ``amount`` if it is a transferable amount in minor units, else raise MoneyError.

    Only real ``int`` values are accepted: ``bool``, ``float`` and ``Decimal`` are refused
    even when integral, so a float can never slip into the ledger unnoticed.
    """
    if not is_int(amount):
        raise MoneyError(f"amount must be an integer number of minor units, got {amount!r}")
    assert isinstance(amount, int)
    if amount <= 0:
        raise MoneyError(f"amount must be positive, got {amount}")
    if amount > MAX_AMOUNT:
        raise MoneyError(f"amount {amount} exceeds the maximum of {MAX_AMOUNT}")
    return int(amount)


def format_minor(amount: int, currency: str) -> str:
    """Minor units as major-unit text with exactly the currency's decimals: 1234 -> "12.34"."""
    if not is_int(amount):
        raise MoneyError(f"amount must be an integer number of minor units, got {amount!r}")
    exp = exponent(currency)
    sign = "-" if amount < 0 else ""
    digits = str(abs(amount))
    if exp == 0:
        return sign + digits
    digits = digits.rjust(exp + 1, "0")
    return f"{sign}{digits[:-exp]}.{digits[-exp:]}"


_MAJOR_TEXT = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?", re.ASCII)


def parse_major(text: str, currency: str) -> int:
    """Major-unit text to minor units: "12.34" -> 1234, strictly.

    Accepted: optional ``-``, ASCII digits, optionally ``.`` and 1..exponent digits. Refused:
    more decimals than the currency has (never rounded), exponent notation, NaN/Infinity,
    whitespace, ``+``, thousands separators, a bare ``.``, and non-``str`` input.
    """
    exp = exponent(currency)
    if not isinstance(text, str):
        raise MoneyError(f"money text must be a string, got {type(text).__name__}")
    if len(text) > _MAX_TEXT_LENGTH:
        raise MoneyError("money text is too long")
    match = _MAJOR_TEXT.fullmatch(text)
    if match is None:
        raise MoneyError(f"not a plain decimal amount: {text!r}")
    fraction = match.group(3)
    if fraction is not None and len(fraction) > exp:
        raise MoneyError(f"{currency} amounts have at most {exp} decimals: {text!r}")
    # The pattern already guarantees exactness; Decimal does the arithmetic with enough
    # precision that nothing is rounded.
    with decimal.localcontext() as ctx:
        ctx.prec = _MAX_TEXT_LENGTH + exp + 2
        ctx.traps[decimal.Inexact] = True
        minor = decimal.Decimal(text).scaleb(exp)
    return int(minor)
