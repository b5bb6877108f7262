"""Fees: compute_fee against an independent Fraction reference, schedules and quotes."""

import datetime as dt
import decimal
import tomllib
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paymux.domain.fees import (
    MAX_BPS,
    FeeError,
    FeeKind,
    FeeQuote,
    FeeRule,
    FeeScheduleEntry,
    Rounding,
    compute_fee,
    load_schedule,
    quote,
    resolve_rule,
    schedule_rounding,
)
from paymux.domain.money import MAX_AMOUNT

CONFIG_FEES = Path(__file__).resolve().parents[2] / "config" / "fees.toml"
CST = dt.timezone(dt.timedelta(hours=8))


def reference_fee(amount: int, rule: FeeRule, rounding: Rounding) -> int:
    """Written independently of compute_fee: exact rationals, rounding by hand."""
    exact = Fraction(amount) * Fraction(rule.bps) / 10000  # Fraction(Decimal) is exact
    whole, remainder = divmod(exact, 1)
    whole = int(whole)
    half = Fraction(1, 2)
    if rounding == "down":
        variable = whole
    elif rounding == "up":
        variable = whole + (1 if remainder > 0 else 0)
    elif rounding == "half_up":
        variable = whole + (1 if remainder >= half else 0)
    else:  # half_even
        rounds_up = remainder > half or (remainder == half and whole % 2 == 1)
        variable = whole + (1 if rounds_up else 0)
    fee = variable + rule.fixed
    fee = max(fee, rule.minimum)
    if rule.maximum is not None:
        fee = min(fee, rule.maximum)
    return fee


bps_values = st.one_of(
    st.builds(
        lambda units, places: Decimal(units).scaleb(-places),
        st.integers(min_value=0, max_value=10**6),
        st.integers(min_value=0, max_value=6),
    ).filter(lambda d: d <= MAX_BPS),
    st.decimals(min_value=0, max_value=MAX_BPS, allow_nan=False, allow_infinity=False),
    st.sampled_from([Decimal(0), Decimal(50), Decimal("0.5"), Decimal(MAX_BPS)]),
)


@st.composite
def fee_rules(draw: st.DrawFn) -> FeeRule:
    minimum = draw(st.integers(min_value=0, max_value=10**6))
    maximum = draw(st.none() | st.integers(min_value=0, max_value=10**6).map(minimum.__add__))
    return FeeRule(
        bps=draw(bps_values),
        fixed=draw(st.integers(min_value=0, max_value=10**6)),
        minimum=minimum,
        maximum=maximum,
    )


amounts = st.one_of(
    st.integers(min_value=0, max_value=MAX_AMOUNT),
    st.integers(min_value=0, max_value=100_000),
)


@given(amounts, fee_rules(), st.sampled_from(Rounding))
def test_compute_fee_matches_reference(amount: int, rule: FeeRule, rounding: Rounding) -> None:
    fee = compute_fee(amount, rule, rounding)
    assert type(fee) is int
    assert fee == reference_fee(amount, rule, rounding)
    assert fee >= 0
    assert fee >= min(rule.minimum, rule.maximum if rule.maximum is not None else rule.minimum)
    if rule.maximum is not None:
        assert fee <= rule.maximum
    else:
        assert fee >= rule.minimum


@given(amounts, amounts, fee_rules(), st.sampled_from(Rounding))
def test_compute_fee_is_monotone_in_amount(
    a: int, b: int, rule: FeeRule, rounding: Rounding
) -> None:
    low, high = sorted((a, b))
    assert compute_fee(low, rule, rounding) <= compute_fee(high, rule, rounding)


@given(amounts, fee_rules())
def test_rounding_modes_are_ordered(amount: int, rule: FeeRule) -> None:
    down = compute_fee(amount, rule, Rounding.down)
    up = compute_fee(amount, rule, Rounding.up)
    for mode in (Rounding.half_up, Rounding.half_even):
        assert down <= compute_fee(amount, rule, mode) <= up
    assert up - down <= 1


@pytest.mark.parametrize(
    ("amount", "bps", "rounding", "fee"),
    [
        (10_000, "60", Rounding.half_up, 60),
        (250, "20", Rounding.half_up, 1),  # exactly 0.5 fen
        (250, "20", Rounding.half_even, 0),
        (750, "20", Rounding.half_even, 2),  # 1.5 -> 2
        (250, "20", Rounding.down, 0),
        (250, "20", Rounding.up, 1),
        (1, "1", Rounding.up, 1),  # 0.0001 fen rounds up to a whole fen
        (1, "1", Rounding.half_up, 0),
        (12_345, "7.5", Rounding.half_up, 9),  # 9.25875
        (10**13, "10000", Rounding.half_up, 10**13),
    ],
)
def test_compute_fee_examples(amount: int, bps: str, rounding: Rounding, fee: int) -> None:
    assert compute_fee(amount, FeeRule(bps=Decimal(bps)), rounding) == fee


def test_compute_fee_fixed_and_clamps() -> None:
    rule = FeeRule(bps=Decimal(60), fixed=0, minimum=100, maximum=2500)
    assert compute_fee(1, rule) == 100
    assert compute_fee(50_000, rule) == 300
    assert compute_fee(10**9, rule) == 2500
    assert compute_fee(10_000, FeeRule(bps=Decimal(10), fixed=200)) == 210
    assert compute_fee(0, FeeRule()) == 0
    # A cap below the fixed part wins: the fee is never above maximum.
    assert compute_fee(10, FeeRule(fixed=500, maximum=300)) == 300


def test_default_rounding_is_half_up() -> None:
    assert compute_fee(250, FeeRule(bps=Decimal(20))) == 1


def test_compute_fee_does_not_touch_the_global_decimal_context() -> None:
    before = decimal.getcontext().copy()
    compute_fee(10**13, FeeRule(bps=Decimal("1234.56789")), Rounding.half_even)
    after = decimal.getcontext()
    assert (after.prec, after.rounding, after.traps) == (before.prec, before.rounding, before.traps)


@pytest.mark.parametrize("amount", [-1, 1.0, True, Decimal(5), "5"])
def test_compute_fee_refuses_bad_amounts(amount: object) -> None:
    with pytest.raises(FeeError):
        compute_fee(amount, FeeRule())  # type: ignore[arg-type]


def test_compute_fee_refuses_unknown_rounding() -> None:
    with pytest.raises(FeeError):
        compute_fee(100, FeeRule(bps=Decimal(60)), "ceiling")  # type: ignore[arg-type]


def test_rounding_decimal_modes() -> None:
    assert Rounding.half_up.decimal_mode == decimal.ROUND_HALF_UP
    assert Rounding.half_even.decimal_mode == decimal.ROUND_HALF_EVEN
    assert Rounding.down.decimal_mode == decimal.ROUND_DOWN
    assert Rounding.up.decimal_mode == decimal.ROUND_UP
    assert Rounding("half_up") is Rounding.half_up


def test_fee_rule_accepts_int_bps_as_decimal() -> None:
    rule = FeeRule(bps=60)  # type: ignore[arg-type]
    assert rule.bps == Decimal(60)
    assert isinstance(rule.bps, Decimal)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bps": 0.6},
        {"bps": Decimal("-1")},
        {"bps": Decimal("NaN")},
        {"bps": Decimal("Infinity")},
        {"bps": Decimal(MAX_BPS + 1)},
        {"bps": "60"},
        {"fixed": -1},
        {"fixed": 1.0},
        {"fixed": True},
        {"minimum": -5},
        {"maximum": -5},
        {"minimum": 100, "maximum": 99},
    ],
)
def test_fee_rule_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(FeeError):
        FeeRule(**kwargs)  # type: ignore[arg-type]


# --- schedules --------------------------------------------------------------------------

T0 = dt.datetime(2024, 1, 1, tzinfo=CST)
T1 = dt.datetime(2024, 6, 1, tzinfo=CST)
T2 = dt.datetime(2025, 1, 1, tzinfo=CST)


def price(
    bps: int,
    at: dt.datetime,
    merchant: str | None = None,
    version: int = 0,
    channel: str = "alipay",
) -> FeeScheduleEntry:
    return FeeScheduleEntry(
        kind=FeeKind.price,
        channel=channel,
        payee_type="alipay_account",
        rule=FeeRule(bps=Decimal(bps)),
        effective_at=at,
        merchant_id=merchant,
        version=version,
    )


def resolve(entries: list[FeeScheduleEntry], merchant: str | None, at: dt.datetime) -> int | None:
    found = resolve_rule(
        entries,
        kind=FeeKind.price,
        merchant_id=merchant,
        channel="alipay",
        payee_type="alipay_account",
        at=at,
    )
    return None if found is None else int(found.rule.bps)


def test_resolve_rule_picks_latest_effective_default() -> None:
    entries = [price(60, T0), price(50, T1), price(40, T2)]
    assert resolve(entries, "mer_a", T0 - dt.timedelta(seconds=1)) is None
    assert resolve(entries, "mer_a", T0) == 60  # effective_at <= at
    assert resolve(entries, "mer_a", T1 - dt.timedelta(microseconds=1)) == 60
    assert resolve(entries, "mer_a", T1) == 50
    assert resolve(entries, None, T2 + dt.timedelta(days=1)) == 40


def test_resolve_rule_merchant_specific_beats_default() -> None:
    entries = [price(60, T0), price(30, T0, "mer_a"), price(55, T1)]
    assert resolve(entries, "mer_a", T1) == 30  # even though the default is newer
    assert resolve(entries, "mer_b", T1) == 55  # another merchant's price never applies
    assert resolve(entries, None, T1) == 55
    # Before the merchant's own price starts, the default applies.
    assert resolve([price(60, T0), price(30, T1, "mer_a")], "mer_a", T0) == 60


def test_resolve_rule_version_breaks_ties_and_filters_apply() -> None:
    entries = [price(60, T0, version=1), price(70, T0, version=2), price(80, T0, version=0)]
    assert resolve(entries, "mer_a", T1) == 70
    other_channel = [price(10, T0, channel="wechat")]
    assert resolve(other_channel, "mer_a", T1) is None
    cost = FeeScheduleEntry(FeeKind.cost, "alipay", "alipay_account", FeeRule(), T0)
    assert resolve([cost], "mer_a", T1) is None


def test_resolve_rule_is_order_independent() -> None:
    entries = [price(60, T0), price(50, T1), price(30, T0, "mer_a"), price(20, T1, "mer_a")]
    assert resolve(entries, "mer_a", T2) == 20
    assert resolve(list(reversed(entries)), "mer_a", T2) == 20


def test_resolve_rule_needs_aware_instant() -> None:
    with pytest.raises(FeeError):
        resolve([price(60, T0)], "mer_a", dt.datetime(2024, 7, 1))


def test_schedule_entry_validation() -> None:
    with pytest.raises(FeeError):
        price(60, dt.datetime(2024, 1, 1))  # naive on purpose
    with pytest.raises(FeeError):
        FeeScheduleEntry(FeeKind.cost, "alipay", "alipay_account", FeeRule(), T0, "mer_a")
    with pytest.raises(FeeError):
        FeeScheduleEntry(FeeKind.price, "", "alipay_account", FeeRule(), T0)
    with pytest.raises(FeeError, match="kind"):
        FeeScheduleEntry("bogus", "alipay", "alipay_account", FeeRule(), T0)  # type: ignore[arg-type]


def test_quote_combines_price_and_cost() -> None:
    entries = [
        FeeScheduleEntry(
            FeeKind.price,
            "alipay",
            "alipay_account",
            FeeRule(bps=Decimal(60), minimum=100),
            T0,
            version=3,
        ),
        FeeScheduleEntry(
            FeeKind.cost, "alipay", "alipay_account", FeeRule(bps=Decimal(10)), T0, version=7
        ),
    ]
    q = quote(
        entries,
        merchant_id="mer_a",
        channel="alipay",
        payee_type="alipay_account",
        amount=100_000,
        at=T1,
        rounding=Rounding.half_up,
    )
    assert q == FeeQuote(
        fee=600, channel_cost=100, rounding=Rounding.half_up, price_version=3, cost_version=7
    )
    assert q.margin == 500


def test_quote_missing_rules_are_zero_and_loss_is_visible() -> None:
    cost_only = [FeeScheduleEntry(FeeKind.cost, "wechat", "wechat_openid", FeeRule(fixed=30), T0)]
    q = quote(
        iter(cost_only),
        merchant_id="mer_a",
        channel="wechat",
        payee_type="wechat_openid",
        amount=1_000,
        at=T1,
        rounding=Rounding.down,
    )
    assert (q.fee, q.channel_cost, q.price_version, q.cost_version) == (0, 30, None, 0)
    assert q.margin == -30
    empty = quote(
        [],
        merchant_id=None,
        channel="wechat",
        payee_type="wechat_openid",
        amount=1,
        at=T1,
        rounding=Rounding.half_even,
    )
    assert (empty.fee, empty.channel_cost, empty.price_version, empty.cost_version) == (
        0,
        0,
        None,
        None,
    )
    assert empty.rounding is Rounding.half_even


SPEC_EXAMPLE = """
rounding = "half_up"
[[price]]
channel = "alipay"
payee_type = "alipay_account"
bps = "60"
fixed = 0
minimum = 100
maximum = 2500
effective_at = 2024-01-01T00:00:00+08:00
[[price]]
merchant_id = "mer_vip"
channel = "alipay"
payee_type = "alipay_account"
bps = 25
effective_at = "2024-03-01T00:00:00+08:00"
version = 2
[[cost]]
channel = "alipay"
payee_type = "alipay_account"
bps = "10"
"""


def test_load_schedule_parses_toml_document() -> None:
    data = tomllib.loads(SPEC_EXAMPLE)
    entries = load_schedule(data)
    assert schedule_rounding(data) is Rounding.half_up
    assert len(entries) == 3
    default, vip, cost = entries
    assert default.kind is FeeKind.price and default.merchant_id is None
    assert default.rule == FeeRule(bps=Decimal(60), fixed=0, minimum=100, maximum=2500)
    assert default.effective_at == dt.datetime(2024, 1, 1, tzinfo=CST)
    assert vip.merchant_id == "mer_vip" and vip.version == 2 and vip.rule.bps == 25
    assert vip.effective_at == dt.datetime(2024, 3, 1, tzinfo=CST)
    assert cost.kind is FeeKind.cost and cost.rule == FeeRule(bps=Decimal(10))
    assert cost.effective_at.year == 1970  # no effective_at: always in force
    q = quote(
        entries,
        merchant_id="mer_vip",
        channel="alipay",
        payee_type="alipay_account",
        amount=100_000,
        at=T1,
        rounding=schedule_rounding(data),
    )
    assert (q.fee, q.channel_cost, q.price_version) == (250, 100, 2)


def test_schedule_rounding_defaults_and_validates() -> None:
    assert schedule_rounding({}) is Rounding.half_up
    assert schedule_rounding({"rounding": "half_even"}) is Rounding.half_even
    for bad in ("HALF_UP", "ceiling", 1, None):
        with pytest.raises(FeeError):
            schedule_rounding({"rounding": bad})


ENTRY = 'channel = "alipay"\npayee_type = "alipay_account"\n'


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("[[price]]\n" + ENTRY + "bps = 0.6\n", "float"),
        ("[[price]]\n" + ENTRY + 'bps = "0.6"\nfixed = 1.5\n', "float"),
        ("[[price]]\n" + ENTRY + 'bps = "-1"\n', "bps"),
        ("[[price]]\n" + ENTRY + 'bps = "1e2"\n', "bps"),
        ("[[price]]\n" + ENTRY + 'bps = "NaN"\n', "bps"),
        ("[[price]]\n" + ENTRY + "maximun = 5\n", "maximun"),
        ("[[prices]]\n" + ENTRY, "prices"),
        ("[[price]]\n" + ENTRY + "effective_at = 2024-01-01T00:00:00\n", "effective_at"),
        ("[[price]]\n" + ENTRY + "effective_at = 2024-01-01\n", "effective_at"),
        ("[[price]]\n" + ENTRY + 'effective_at = "soon"\n', "effective_at"),
        ("[[cost]]\n" + ENTRY + 'merchant_id = "mer_a"\n', "merchant"),
        ('[[price]]\npayee_type = "alipay_account"\n', "channel"),
        ("[[price]]\n" + ENTRY + "minimum = 10\nmaximum = 5\n", "maximum"),
        ("[[price]]\n" + ENTRY + 'version = "1"\n', "version"),
        ("price = 5\n", "array"),
        ("[[price]]\n" + ENTRY + "[[price]]\n" + ENTRY, "version"),
        ('rounding = "sideways"\n', "rounding"),
    ],
)
def test_load_schedule_rejects_bad_documents(document: str, message: str) -> None:
    with pytest.raises(FeeError, match=message):
        load_schedule(tomllib.loads(document))


def test_load_schedule_names_the_bad_entry() -> None:
    document = "[[price]]\n" + ENTRY + "[[price]]\n" + ENTRY + "bps = 0.5\n"
    with pytest.raises(FeeError, match=r"price\[1\]"):
        load_schedule(tomllib.loads(document))


def test_repository_fee_schedule_loads() -> None:
    data = tomllib.loads(CONFIG_FEES.read_text(encoding="utf-8"))
    entries = load_schedule(data)
    assert schedule_rounding(data) is Rounding.half_up
    keys = {(e.kind, e.channel, e.payee_type) for e in entries}
    for kind in FeeKind:
        for channel, payee_type in (
            ("alipay", "alipay_account"),
            ("alipay", "bank_card"),
            ("wechat", "wechat_openid"),
        ):
            assert (kind, channel, payee_type) in keys
    now = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    q = quote(
        entries,
        merchant_id="mer_a",
        channel="alipay",
        payee_type="alipay_account",
        amount=10_000,
        at=now,
        rounding=Rounding.half_up,
    )
    assert q.fee == 100  # 0.6 % of 100.00 is 0.60, raised to the 1.00 minimum
    q = quote(
        entries,
        merchant_id="mer_a",
        channel="alipay",
        payee_type="bank_card",
        amount=10_000,
        at=now,
        rounding=Rounding.half_up,
    )
    assert q.fee == 210  # 0.1 % + 2.00


_CONFIG_ENTRIES = load_schedule(tomllib.loads(CONFIG_FEES.read_text(encoding="utf-8")))


@given(
    st.integers(min_value=1, max_value=MAX_AMOUNT),
    st.sampled_from(
        [("alipay", "alipay_account"), ("alipay", "bank_card"), ("wechat", "wechat_openid")]
    ),
)
def test_repository_fee_schedule_never_loses_money(amount: int, route: tuple[str, str]) -> None:
    q = quote(
        _CONFIG_ENTRIES,
        merchant_id="mer_a",
        channel=route[0],
        payee_type=route[1],
        amount=amount,
        at=dt.datetime(2025, 6, 1, tzinfo=dt.UTC),
        rounding=Rounding.half_up,
    )
    assert q.margin >= 0
    assert q.fee > 0
