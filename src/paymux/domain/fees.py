"""Fee rules, fee schedules and fee quotes.

A :class:`FeeRule` turns a transfer amount into a fee in integer minor units:
``variable = amount * bps / 10000`` rounded to a whole minor unit with an explicit
:class:`Rounding` mode, plus ``fixed``, clamped to ``[minimum, maximum]``.

A schedule is a list of :class:`FeeScheduleEntry`: *price* entries (what a merchant pays
Paymux, optionally per merchant) and *cost* entries (what a channel charges Paymux). Entries
are versioned by ``effective_at``, so a price change is a new entry, never an edit, and a
transfer's quote can be reproduced for any instant.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from paymux.domain.money import is_int


class FeeError(ValueError):
    """An invalid fee rule, schedule entry or schedule document."""


class Rounding(enum.StrEnum):
    """How the variable part of a fee lands on a whole minor unit."""

    half_up = "half_up"
    half_even = "half_even"
    down = "down"  # toward zero (fees are never negative, so: floor)
    up = "up"  # away from zero (ceiling)

    @property
    def decimal_mode(self) -> str:
        return _DECIMAL_MODES[self]


_DECIMAL_MODES: Mapping[Rounding, str] = {
    Rounding.half_up: decimal.ROUND_HALF_UP,
    Rounding.half_even: decimal.ROUND_HALF_EVEN,
    Rounding.down: decimal.ROUND_DOWN,
    Rounding.up: decimal.ROUND_UP,
}


MAX_BPS = 10000


def _check_minor(name: str, value: object) -> int:
    if not is_int(value):
        raise FeeError(f"{name} must be an integer number of minor units, got {value!r}")
    assert isinstance(value, int)
    if value < 0:
        raise FeeError(f"{name} must not be negative, got {value}")
    return value


@dataclass(frozen=True)
class FeeRule:
    """``bps`` basis points (1 bps = 0.01 %, may be fractional) plus ``fixed`` minor units,
    clamped to ``[minimum, maximum]`` (``maximum=None``: no cap)."""

    bps: Decimal = Decimal(0)
    fixed: int = 0
    minimum: int = 0
    maximum: int | None = None

    def __post_init__(self) -> None:
        bps: object = self.bps
        if is_int(bps):
            object.__setattr__(self, "bps", Decimal(bps))  # type: ignore[arg-type]
        elif not isinstance(bps, Decimal):
            raise FeeError(f"bps must be a Decimal or an int (never a float), got {bps!r}")
        # Above 100 % a rate is a unit mistake (percent written as bps), not a price.
        if not self.bps.is_finite() or not 0 <= self.bps <= MAX_BPS:
            raise FeeError(f"bps must be between 0 and {MAX_BPS}, got {self.bps}")
        _check_minor("fixed", self.fixed)
        _check_minor("minimum", self.minimum)
        if self.maximum is not None:
            _check_minor("maximum", self.maximum)
            if self.maximum < self.minimum:
                raise FeeError(f"maximum {self.maximum} is below minimum {self.minimum}")


def compute_fee(amount: int, rule: FeeRule, rounding: Rounding = Rounding.half_up) -> int:
    """The fee for ``amount`` minor units under ``rule``; an int >= 0."""
    _check_minor("amount", amount)
    mode = _rounding(rounding).decimal_mode
    bps_tuple = rule.bps.as_tuple()
    assert isinstance(bps_tuple.exponent, int)  # finite, checked by FeeRule
    # Enough digits that amount * bps / 10000 is exact before the single, explicit rounding.
    # (bps <= MAX_BPS bounds a positive exponent unless the coefficient is zero.)
    precision = len(str(amount)) + len(bps_tuple.digits) + min(max(bps_tuple.exponent, 0), 8) + 8
    with decimal.localcontext() as ctx:
        ctx.prec = max(precision, 28)
        ctx.traps[decimal.Inexact] = True
        exact = Decimal(amount) * rule.bps / 10000
        ctx.traps[decimal.Inexact] = False
        variable = int(exact.quantize(Decimal(1), rounding=mode))
    fee = max(variable + rule.fixed, rule.minimum)
    if rule.maximum is not None:
        fee = min(fee, rule.maximum)
    return max(fee, 0)


def _rounding(value: object) -> Rounding:
    if isinstance(value, str) and value in Rounding.__members__:
        return Rounding(value)
    raise FeeError(f"unknown rounding mode: {value!r}")


class FeeKind(enum.StrEnum):
    price = "price"  # what the merchant pays Paymux
    cost = "cost"  # what the channel charges Paymux


@dataclass(frozen=True)
class FeeScheduleEntry:
    """One rule, for one kind/channel/payee type, from ``effective_at`` on.

    ``merchant_id=None`` is the default for every merchant; cost entries always have None.
    """

    kind: FeeKind
    channel: str
    payee_type: str
    rule: FeeRule
    effective_at: dt.datetime
    merchant_id: str | None = None
    version: int = 0

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", FeeKind(self.kind))
        except ValueError:
            raise FeeError(f"kind must be price or cost, got {self.kind!r}") from None
        for name in ("channel", "payee_type"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise FeeError(f"{name} must be a non-empty string, got {value!r}")
        if not isinstance(self.rule, FeeRule):
            raise FeeError(f"rule must be a FeeRule, got {self.rule!r}")
        if not _is_aware(self.effective_at):
            raise FeeError("effective_at must be a timezone-aware datetime")
        if self.merchant_id is not None:
            if self.kind is FeeKind.cost:
                raise FeeError("cost entries apply to all merchants (merchant_id must be None)")
            if not isinstance(self.merchant_id, str) or not self.merchant_id:
                raise FeeError(f"merchant_id must be a non-empty string, got {self.merchant_id!r}")
        if not is_int(self.version):
            raise FeeError(f"version must be an int, got {self.version!r}")


def _is_aware(value: object) -> bool:
    return isinstance(value, dt.datetime) and value.utcoffset() is not None


def resolve_rule(
    entries: Iterable[FeeScheduleEntry],
    *,
    kind: FeeKind,
    merchant_id: str | None,
    channel: str,
    payee_type: str,
    at: dt.datetime,
) -> FeeScheduleEntry | None:
    """The entry in force at ``at``: a merchant-specific entry beats the default; among
    those, the latest ``effective_at`` wins, then the highest ``version``."""
    if not _is_aware(at):
        raise FeeError("at must be a timezone-aware datetime")
    specific: FeeScheduleEntry | None = None
    default: FeeScheduleEntry | None = None
    for entry in entries:
        if (
            entry.kind != kind
            or entry.channel != channel
            or entry.payee_type != payee_type
            or entry.effective_at > at
        ):
            continue
        if entry.merchant_id is None:
            default = _later(default, entry)
        elif merchant_id is not None and entry.merchant_id == merchant_id:
            specific = _later(specific, entry)
    return specific if specific is not None else default


def _later(best: FeeScheduleEntry | None, entry: FeeScheduleEntry) -> FeeScheduleEntry:
    if best is None or (entry.effective_at, entry.version) > (best.effective_at, best.version):
        return entry
    return best


@dataclass(frozen=True)
class FeeQuote:
    """The merchant's fee and the channel's cost for one transfer, with the versions used."""

    fee: int
    channel_cost: int
    rounding: Rounding
    price_version: int | None
    cost_version: int | None

    @property
    def margin(self) -> int:
        """Fee minus channel cost; negative for a loss-making (allowed, visible) price."""
        return self.fee - self.channel_cost


def quote(
    entries: Iterable[FeeScheduleEntry],
    *,
    merchant_id: str | None,
    channel: str,
    payee_type: str,
    amount: int,
    at: dt.datetime,
    rounding: Rounding = Rounding.half_up,
) -> FeeQuote:
    """Price and cost of one transfer at ``at``; a side with no rule costs 0 (version None)."""
    schedule = tuple(entries)
    price = resolve_rule(
        schedule,
        kind=FeeKind.price,
        merchant_id=merchant_id,
        channel=channel,
        payee_type=payee_type,
        at=at,
    )
    cost = resolve_rule(
        schedule, kind=FeeKind.cost, merchant_id=None, channel=channel, payee_type=payee_type, at=at
    )
    rounding = _rounding(rounding)
    return FeeQuote(
        fee=compute_fee(amount, price.rule, rounding) if price else 0,
        channel_cost=compute_fee(amount, cost.rule, rounding) if cost else 0,
        rounding=rounding,
        price_version=price.version if price else None,
        cost_version=cost.version if cost else None,
    )


# --- schedule documents (as read from TOML) ---------------------------------------------

# Entries with no effective_at have always been in force.
ALWAYS = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

_TOP_LEVEL_KEYS = frozenset({"rounding", "price", "cost"})
_ENTRY_KEYS = frozenset(
    {
        "channel",
        "payee_type",
        "merchant_id",
        "bps",
        "fixed",
        "minimum",
        "maximum",
        "effective_at",
        "version",
    }
)
_BPS_TEXT = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)


def schedule_rounding(data: Mapping[str, Any]) -> Rounding:
    """The schedule's rounding mode (``rounding = "half_up"`` when absent)."""
    value = data.get("rounding", Rounding.half_up.value)
    if isinstance(value, str) and value in Rounding.__members__:
        return Rounding(value)
    choices = ", ".join(Rounding.__members__)
    raise FeeError(f"rounding must be one of {choices}; got {value!r}")


def load_schedule(data: Mapping[str, Any]) -> list[FeeScheduleEntry]:
    """Parse a fee schedule document (``[[price]]`` and ``[[cost]]`` tables).

    Strict on purpose: an unknown key (a typo such as ``maximun`` or ``prices``) is an error
    rather than a silently missing rule, floats are refused (``bps`` must be a string or an
    int), and two entries for the same key and instant are ambiguous and refused.
    """
    unknown = set(data) - _TOP_LEVEL_KEYS
    if unknown:
        raise FeeError(f"unknown fee schedule keys: {', '.join(sorted(unknown))}")
    schedule_rounding(data)
    entries: list[FeeScheduleEntry] = []
    for kind in FeeKind:
        tables = data.get(kind.value, [])
        if not isinstance(tables, list):
            raise FeeError(f"{kind.value} must be an array of tables ([[{kind.value}]])")
        for index, table in enumerate(tables):
            where = f"{kind.value}[{index}]"
            if not isinstance(table, Mapping):
                raise FeeError(f"{where} must be a table")
            try:
                entries.append(_parse_entry(kind, table))
            except FeeError as exc:
                raise FeeError(f"{where}: {exc}") from None
    _check_unambiguous(entries)
    return entries


def _parse_entry(kind: FeeKind, table: Mapping[str, Any]) -> FeeScheduleEntry:
    unknown = set(table) - _ENTRY_KEYS
    if unknown:
        raise FeeError(f"unknown keys: {', '.join(sorted(unknown))}")
    for required in ("channel", "payee_type"):
        if required not in table:
            raise FeeError(f"missing {required}")
    maximum = table.get("maximum")
    rule = FeeRule(
        bps=_parse_bps(table.get("bps", 0)),
        fixed=_parse_minor("fixed", table.get("fixed", 0)),
        minimum=_parse_minor("minimum", table.get("minimum", 0)),
        maximum=None if maximum is None else _parse_minor("maximum", maximum),
    )
    version = table.get("version", 0)
    if not is_int(version):
        raise FeeError(f"version must be an integer, got {version!r}")
    return FeeScheduleEntry(
        kind=kind,
        channel=table["channel"],
        payee_type=table["payee_type"],
        rule=rule,
        effective_at=_parse_effective_at(table.get("effective_at", ALWAYS)),
        merchant_id=table.get("merchant_id"),
        version=version,
    )


def _parse_bps(value: object) -> Decimal:
    if isinstance(value, float):
        raise FeeError(
            f"bps must be a string or an integer, never a float (got {value!r}); "
            f'write bps = "{value}"'
        )
    if is_int(value):
        assert isinstance(value, int)
        return Decimal(value)
    if isinstance(value, str) and _BPS_TEXT.fullmatch(value):
        return Decimal(value)
    raise FeeError(f"bps must be a non-negative decimal string or integer, got {value!r}")


def _parse_minor(name: str, value: object) -> int:
    if isinstance(value, float):
        raise FeeError(
            f"{name} must be an integer number of minor units, never a float (got {value!r})"
        )
    return _check_minor(name, value)


def _parse_effective_at(value: object) -> dt.datetime:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise FeeError(f"effective_at is not an ISO 8601 datetime: {value!r}") from None
    if not _is_aware(value):
        raise FeeError(f"effective_at must be a datetime with a UTC offset, got {value!r}")
    assert isinstance(value, dt.datetime)
    return value


def _check_unambiguous(entries: Iterable[FeeScheduleEntry]) -> None:
    seen: set[tuple[object, ...]] = set()
    for entry in entries:
        key = (
            entry.kind,
            entry.merchant_id,
            entry.channel,
            entry.payee_type,
            entry.effective_at,
            entry.version,
        )
        if key in seen:
            raise FeeError(
                f"two {entry.kind.value} entries for {entry.channel}/{entry.payee_type} "
                f"(merchant {entry.merchant_id or 'default'}) at {entry.effective_at.isoformat()}"
                f" with version {entry.version}: bump one entry's version or effective_at"
            )
        seen.add(key)


__all__ = [
    "ALWAYS",
    "MAX_BPS",
    "FeeError",
    "FeeKind",
    "FeeQuote",
    "FeeRule",
    "FeeScheduleEntry",
    "Rounding",
    "compute_fee",
    "load_schedule",
    "quote",
    "resolve_rule",
    "schedule_rounding",
]
