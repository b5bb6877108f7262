"""Double-entry ledger rules: accounts, journal entries, and the entries a transfer makes.

Sign convention
---------------
Every account has one signed integer balance in minor units, and a balance is the sum of
that account's postings. A posting's ``amount`` is the change it makes to that balance.
Every journal entry sums to zero, so the sum of all balances in a currency is always zero.

Read the balances as follows:

* ``merchant_available`` (+): money the merchant may spend. Never negative.
* ``merchant_held`` (+): money reserved for transfers in flight (amount + fee). Never negative.
* ``channel_clearing`` (+): money that left through the channel (amounts paid plus what the
  channel charged for them), to be matched against the channel's statement and our
  prefunding there.
* ``fee_revenue`` (+): fees earned from merchants.
* ``channel_cost`` (-): what channels charged us (an expense, so it runs negative).
* ``topup_funding`` (-): money that came in from outside (merchant top-ups).

Transfer lifecycle (two-phase, like pending / post / void transfers)
----------------------------------------------------------------------
* create: :func:`hold_entry` reserves ``amount + fee`` (available -> held).
* success: :func:`settle_entry` posts the reservation: ``amount`` and the channel's cost to
  clearing, ``fee`` to revenue, the cost to the expense account.
* failure: :func:`release_entry` voids the reservation (held -> available).
* bank bounce after success (退票): :func:`reverse_entry`.

Returned-transfer fee policy: when a paid transfer bounces, only the transfer **amount**
comes back to the merchant's available balance. The merchant's **fee is not refunded**
(the work was done and the channel charged us for it), and the **channel cost is not
recovered** (channels keep their charge on a bounce). Both stay in ``fee_revenue`` and
``channel_cost``. Changing this policy means changing :func:`reverse_entry` and its tests.

Entries are immutable: a mistake or a bounce is corrected by a new entry, never an edit.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from paymux.domain.money import SUPPORTED_CURRENCIES, format_minor, is_int


class LedgerError(ValueError):
    """A journal entry or account that breaks the ledger's rules."""


class InsufficientFunds(LedgerError):
    """Applying an entry would drive a merchant account below zero; nothing was applied."""

    def __init__(
        self,
        message: str,
        *,
        account: AccountRef | None = None,
        balance: int | None = None,
        required: int | None = None,
    ) -> None:
        super().__init__(message)
        self.account = account
        self.balance = balance  # the balance before the refused entry
        self.required = required  # how much the entry wanted to take out


class AccountKind(enum.StrEnum):
    merchant_available = "merchant_available"
    merchant_held = "merchant_held"
    channel_clearing = "channel_clearing"
    fee_revenue = "fee_revenue"
    channel_cost = "channel_cost"
    topup_funding = "topup_funding"


MERCHANT_KINDS = frozenset({AccountKind.merchant_available, AccountKind.merchant_held})
HOUSE_KINDS = frozenset(
    {AccountKind.fee_revenue, AccountKind.channel_cost, AccountKind.topup_funding}
)


@dataclass(frozen=True)
class AccountRef:
    """An account: merchant accounts are owned by a merchant id, clearing accounts by a
    channel name, house accounts by nobody (``owner=None``)."""

    kind: AccountKind
    owner: str | None
    currency: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", AccountKind(self.kind))
        if self.kind in HOUSE_KINDS:
            if self.owner is not None:
                raise LedgerError(f"{self.kind} is a house account and has no owner")
        elif not isinstance(self.owner, str) or not self.owner or ":" in self.owner:
            # ":" separates the parts of .key, so an owner containing it would be ambiguous.
            raise LedgerError(
                f"{self.kind} needs an owner without ':' (merchant id or channel), "
                f"got {self.owner!r}"
            )
        if self.currency not in SUPPORTED_CURRENCIES:
            raise LedgerError(f"unsupported currency: {self.currency!r}")

    @property
    def key(self) -> str:
        """Stable text: ``merchant_available:mer_123:CNY``, ``fee_revenue:CNY``."""
        if self.owner is None:
            return f"{self.kind.value}:{self.currency}"
        return f"{self.kind.value}:{self.owner}:{self.currency}"

    @classmethod
    def from_key(cls, key: str) -> AccountRef:
        """Inverse of :attr:`key`."""
        parts = key.split(":")
        try:
            if len(parts) == 2:
                return cls(AccountKind(parts[0]), None, parts[1])
            if len(parts) == 3:
                return cls(AccountKind(parts[0]), parts[1], parts[2])
        except ValueError as exc:
            raise LedgerError(f"not an account key: {key!r} ({exc})") from None
        raise LedgerError(f"not an account key: {key!r}")

    def __str__(self) -> str:
        return self.key


def merchant_available(merchant_id: str, currency: str) -> AccountRef:
    return AccountRef(AccountKind.merchant_available, merchant_id, currency)


def merchant_held(merchant_id: str, currency: str) -> AccountRef:
    return AccountRef(AccountKind.merchant_held, merchant_id, currency)


def channel_clearing(channel: str, currency: str) -> AccountRef:
    return AccountRef(AccountKind.channel_clearing, channel, currency)


def house_account(kind: AccountKind, currency: str) -> AccountRef:
    return AccountRef(kind, None, currency)


class EntryKind(enum.StrEnum):
    topup = "topup"
    hold = "hold"
    settle = "settle"
    release = "release"
    reverse = "reverse"


@dataclass(frozen=True)
class Posting:
    account: AccountRef
    amount: int  # signed change to the account's balance, minor units


@dataclass(frozen=True)
class JournalEntry:
    """A balanced set of postings: >= 2 postings, one currency, one posting per account,
    every amount a nonzero int, summing to zero."""

    kind: EntryKind
    postings: tuple[Posting, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", EntryKind(self.kind))
        postings = tuple(self.postings)
        object.__setattr__(self, "postings", postings)
        if len(postings) < 2:
            raise LedgerError("a journal entry needs at least two postings")
        for posting in postings:
            if not isinstance(posting, Posting) or not isinstance(posting.account, AccountRef):
                raise LedgerError(f"not a posting: {posting!r}")
            if not is_int(posting.amount) or posting.amount == 0:
                raise LedgerError(
                    f"posting amounts must be nonzero ints, got {posting.amount!r} "
                    f"for {posting.account.key}"
                )
        currencies = {p.account.currency for p in postings}
        if len(currencies) != 1:
            raise LedgerError(f"a journal entry has one currency, got {sorted(currencies)}")
        if len({p.account for p in postings}) != len(postings):
            raise LedgerError("a journal entry posts to each account at most once")
        total = sum(p.amount for p in postings)
        if total != 0:
            raise LedgerError(f"journal entry does not balance: postings sum to {total}")

    @property
    def currency(self) -> str:
        return self.postings[0].account.currency

    def amount_for(self, account: AccountRef) -> int:
        """This entry's posting to ``account`` (0 if none)."""
        return sum(p.amount for p in self.postings if p.account == account)


# --- builders ---------------------------------------------------------------------------


def _positive(name: str, value: object) -> int:
    if not is_int(value) or value <= 0:  # type: ignore[operator]
        raise LedgerError(f"{name} must be a positive int, got {value!r}")
    assert isinstance(value, int)
    return value


def _non_negative(name: str, value: object) -> int:
    if not is_int(value) or value < 0:  # type: ignore[operator]
        raise LedgerError(f"{name} must be a non-negative int, got {value!r}")
    assert isinstance(value, int)
    return value


def _entry(kind: EntryKind, *postings: tuple[AccountRef, int]) -> JournalEntry:
    """Build an entry, dropping zero postings (a zero fee or cost posts nothing)."""
    return JournalEntry(kind, tuple(Posting(a, n) for a, n in postings if n != 0))


def topup_entry(merchant_id: str, amount: int, currency: str) -> JournalEntry:
    """Money arrives for a merchant: topup_funding -amount, available +amount."""
    amount = _positive("amount", amount)
    return _entry(
        EntryKind.topup,
        (house_account(AccountKind.topup_funding, currency), -amount),
        (merchant_available(merchant_id, currency), amount),
    )


def hold_entry(merchant_id: str, amount: int, fee: int, currency: str) -> JournalEntry:
    """A transfer is created: reserve amount + fee (available -> held)."""
    total = _positive("amount", amount) + _non_negative("fee", fee)
    return _entry(
        EntryKind.hold,
        (merchant_available(merchant_id, currency), -total),
        (merchant_held(merchant_id, currency), total),
    )


def settle_entry(
    merchant_id: str, channel: str, amount: int, fee: int, channel_cost: int, currency: str
) -> JournalEntry:
    """A transfer succeeded: held -(amount+fee), clearing +(amount+cost), fee revenue +fee,
    channel cost -cost. Zero fee or cost postings are omitted."""
    amount = _positive("amount", amount)
    fee = _non_negative("fee", fee)
    channel_cost = _non_negative("channel_cost", channel_cost)
    return _entry(
        EntryKind.settle,
        (merchant_held(merchant_id, currency), -(amount + fee)),
        (channel_clearing(channel, currency), amount + channel_cost),
        (house_account(AccountKind.fee_revenue, currency), fee),
        (house_account(AccountKind.channel_cost, currency), -channel_cost),
    )


def release_entry(merchant_id: str, amount: int, fee: int, currency: str) -> JournalEntry:
    """A transfer failed: the reservation goes back (held -> available)."""
    total = _positive("amount", amount) + _non_negative("fee", fee)
    return _entry(
        EntryKind.release,
        (merchant_held(merchant_id, currency), -total),
        (merchant_available(merchant_id, currency), total),
    )


def reverse_entry(merchant_id: str, channel: str, amount: int, currency: str) -> JournalEntry:
    """A paid transfer bounced (退票): clearing -amount, available +amount.

    Returned-transfer fee policy: the fee is NOT refunded and the channel cost is NOT
    recovered; only the transfer amount returns to the merchant (see the module docstring).
    """
    amount = _positive("amount", amount)
    return _entry(
        EntryKind.reverse,
        (channel_clearing(channel, currency), -amount),
        (merchant_available(merchant_id, currency), amount),
    )


# --- balances ---------------------------------------------------------------------------


def apply_entry(balances: dict[AccountRef, int], entry: JournalEntry) -> None:
    """Apply ``entry`` to ``balances`` in place.

    Raises InsufficientFunds, leaving ``balances`` untouched, if a merchant account would go
    negative.
    """
    if not isinstance(entry, JournalEntry):
        raise LedgerError(f"not a journal entry: {entry!r}")
    for posting in entry.postings:
        account = posting.account
        before = balances.get(account, 0)
        if account.kind in MERCHANT_KINDS and before + posting.amount < 0:
            short = format_minor(-(before + posting.amount), account.currency)
            raise InsufficientFunds(
                f"{account.key} is short by {short} {account.currency} for this {entry.kind}",
                account=account,
                balance=before,
                required=-posting.amount,
            )
    for posting in entry.postings:
        balances[posting.account] = balances.get(posting.account, 0) + posting.amount


def replay(entries: Iterable[JournalEntry]) -> dict[AccountRef, int]:
    """Balances derived from the journal, applying each entry in order."""
    balances: dict[AccountRef, int] = {}
    for entry in entries:
        apply_entry(balances, entry)
    return balances


def check_balances(balances: Mapping[AccountRef, int]) -> list[str]:
    """Human-readable violations of the ledger invariants (empty when all is well)."""
    problems: list[str] = []
    totals: dict[str, int] = defaultdict(int)
    for account, balance in sorted(balances.items(), key=lambda item: item[0].key):
        totals[account.currency] += balance
        if account.kind in MERCHANT_KINDS and balance < 0:
            problems.append(f"{account.key} is negative: {format_minor(balance, account.currency)}")
    for currency, total in sorted(totals.items()):
        if total != 0:
            problems.append(f"{currency} balances sum to {format_minor(total, currency)}, not zero")
    return problems
