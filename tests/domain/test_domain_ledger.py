"""Ledger rules: accounts, entry validation, builders and balance application."""

import pytest

import paymux.domain.ledger as ledger
from paymux.domain.ledger import (
    AccountKind,
    AccountRef,
    EntryKind,
    InsufficientFunds,
    JournalEntry,
    LedgerError,
    Posting,
    apply_entry,
    check_balances,
    hold_entry,
    release_entry,
    replay,
    reverse_entry,
    settle_entry,
    topup_entry,
)

AVAIL = AccountRef(AccountKind.merchant_available, "mer_a", "CNY")
HELD = AccountRef(AccountKind.merchant_held, "mer_a", "CNY")
CLEARING = AccountRef(AccountKind.channel_clearing, "alipay", "CNY")
REVENUE = AccountRef(AccountKind.fee_revenue, None, "CNY")
COST = AccountRef(AccountKind.channel_cost, None, "CNY")
FUNDING = AccountRef(AccountKind.topup_funding, None, "CNY")


def postings(entry: JournalEntry) -> dict[str, int]:
    return {p.account.key: p.amount for p in entry.postings}


def test_account_keys_are_stable_and_round_trip() -> None:
    assert AVAIL.key == "merchant_available:mer_a:CNY"
    assert CLEARING.key == "channel_clearing:alipay:CNY"
    assert REVENUE.key == "fee_revenue:CNY"
    for account in (AVAIL, HELD, CLEARING, REVENUE, COST, FUNDING):
        assert AccountRef.from_key(account.key) == account
    for bad in ("", "merchant_available", "nope:mer_a:CNY", "a:b:c:d", "fee_revenue:USD"):
        with pytest.raises(LedgerError):
            AccountRef.from_key(bad)


@pytest.mark.parametrize(
    ("kind", "owner", "currency"),
    [
        (AccountKind.merchant_available, None, "CNY"),
        (AccountKind.merchant_held, "", "CNY"),
        (AccountKind.channel_clearing, "ali:pay", "CNY"),
        (AccountKind.fee_revenue, "mer_a", "CNY"),
        (AccountKind.merchant_available, "mer_a", "USD"),
    ],
)
def test_account_ref_validation(kind: AccountKind, owner: str | None, currency: str) -> None:
    with pytest.raises(LedgerError):
        AccountRef(kind, owner, currency)


def test_builders_post_what_the_rules_say() -> None:
    assert topup_entry("mer_a", 1000, "CNY").kind is EntryKind.topup
    assert postings(topup_entry("mer_a", 1000, "CNY")) == {FUNDING.key: -1000, AVAIL.key: 1000}
    assert postings(hold_entry("mer_a", 1000, 60, "CNY")) == {AVAIL.key: -1060, HELD.key: 1060}
    assert postings(settle_entry("mer_a", "alipay", 1000, 60, 10, "CNY")) == {
        HELD.key: -1060,
        CLEARING.key: 1010,
        REVENUE.key: 60,
        COST.key: -10,
    }
    assert postings(release_entry("mer_a", 1000, 60, "CNY")) == {HELD.key: -1060, AVAIL.key: 1060}
    assert postings(reverse_entry("mer_a", "alipay", 1000, "CNY")) == {
        CLEARING.key: -1000,
        AVAIL.key: 1000,
    }


def test_zero_fee_and_cost_postings_are_omitted() -> None:
    assert postings(settle_entry("mer_a", "alipay", 1000, 0, 0, "CNY")) == {
        HELD.key: -1000,
        CLEARING.key: 1000,
    }
    assert postings(settle_entry("mer_a", "alipay", 1000, 5, 0, "CNY")) == {
        HELD.key: -1005,
        CLEARING.key: 1000,
        REVENUE.key: 5,
    }
    assert postings(hold_entry("mer_a", 1000, 0, "CNY")) == {AVAIL.key: -1000, HELD.key: 1000}


@pytest.mark.parametrize(
    "build",
    [
        lambda: topup_entry("mer_a", 0, "CNY"),
        lambda: topup_entry("mer_a", -5, "CNY"),
        lambda: topup_entry("mer_a", 1.0, "CNY"),  # type: ignore[arg-type]
        lambda: hold_entry("mer_a", 100, -1, "CNY"),
        lambda: hold_entry("mer_a", True, 0, "CNY"),
        lambda: settle_entry("mer_a", "alipay", 100, 0, -1, "CNY"),
        lambda: release_entry("mer_a", 100, 0.5, "CNY"),  # type: ignore[arg-type]
        lambda: reverse_entry("mer_a", "alipay", 0, "CNY"),
        lambda: topup_entry("mer_a", 100, "XXX"),
        lambda: topup_entry("", 100, "CNY"),
    ],
)
def test_builders_refuse_bad_input(build: object) -> None:
    with pytest.raises(LedgerError):
        build()  # type: ignore[operator]


@pytest.mark.parametrize(
    "entry_postings",
    [
        (),
        (Posting(AVAIL, 0),),
        (Posting(AVAIL, 5), Posting(HELD, -4)),
        (Posting(AVAIL, 5), Posting(HELD, -5), Posting(REVENUE, 0)),
        (Posting(AVAIL, 5), Posting(AVAIL, -5)),
        (Posting(AVAIL, True), Posting(HELD, -1)),
        (Posting(AVAIL, 1.0), Posting(HELD, -1.0)),  # type: ignore[arg-type]
    ],
)
def test_journal_entry_validation(entry_postings: tuple[Posting, ...]) -> None:
    with pytest.raises(LedgerError):
        JournalEntry(EntryKind.hold, entry_postings)


def test_journal_entry_is_one_currency(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only CNY is configured; pretend a second currency exists to reach the check.
    monkeypatch.setattr(ledger, "SUPPORTED_CURRENCIES", frozenset({"CNY", "USD"}))
    usd = AccountRef(AccountKind.merchant_available, "mer_a", "USD")
    with pytest.raises(LedgerError, match="currency"):
        JournalEntry(EntryKind.topup, (Posting(usd, 5), Posting(HELD, -5)))


def test_apply_entry_and_replay() -> None:
    entries = [
        topup_entry("mer_a", 10_000, "CNY"),
        hold_entry("mer_a", 5_000, 60, "CNY"),
        settle_entry("mer_a", "alipay", 5_000, 60, 10, "CNY"),
        hold_entry("mer_a", 1_000, 60, "CNY"),
        release_entry("mer_a", 1_000, 60, "CNY"),
        reverse_entry("mer_a", "alipay", 5_000, "CNY"),
    ]
    balances = replay(entries)
    assert balances[AVAIL] == 10_000 - 60  # the bounced transfer's fee is not refunded
    assert balances[HELD] == 0
    assert balances[CLEARING] == 10  # the channel keeps its cost on a bounce
    assert balances[REVENUE] == 60
    assert balances[COST] == -10
    assert balances[FUNDING] == -10_000
    assert check_balances(balances) == []


def test_insufficient_funds_changes_nothing() -> None:
    balances = replay([topup_entry("mer_a", 1_000, "CNY")])
    before = dict(balances)
    with pytest.raises(InsufficientFunds) as excinfo:
        apply_entry(balances, hold_entry("mer_a", 950, 60, "CNY"))
    assert balances == before
    assert excinfo.value.account == AVAIL
    assert excinfo.value.balance == 1_000
    assert excinfo.value.required == 1_010
    assert "0.10" in str(excinfo.value)
    assert isinstance(excinfo.value, LedgerError)
    # Exactly enough is fine.
    apply_entry(balances, hold_entry("mer_a", 940, 60, "CNY"))
    assert balances[AVAIL] == 0
    # A release with nothing held is refused too (held would go negative).
    with pytest.raises(InsufficientFunds):
        apply_entry(balances, release_entry("mer_a", 2_000, 0, "CNY"))
    assert balances[HELD] == 1_000


def test_check_balances_reports_violations() -> None:
    bad = {AVAIL: -5, HELD: 3, FUNDING: -1}
    problems = check_balances(bad)
    assert any("merchant_available:mer_a:CNY" in p and "-0.05" in p for p in problems)
    assert any("CNY" in p and "sum" in p for p in problems)
    assert len(problems) == 2
    assert check_balances({}) == []
    assert check_balances({CLEARING: 5, COST: -5}) == []
