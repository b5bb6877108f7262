"""Stateful property test: random top-ups and transfers through the ledger rules.

Transfers are resolved by feeding random channel outcomes (duplicates, late and out-of-order
ones included) through the transfer state machine, so the test also checks that the state
machine and the ledger rules compose: every transfer settles or releases at most once, and
only a settled transfer can be reversed.

The expected balances are computed from plain counters kept by the test, independently of
the ledger module.
"""

from collections import defaultdict
from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from paymux.domain.ledger import (
    AccountKind,
    AccountRef,
    EntryKind,
    InsufficientFunds,
    JournalEntry,
    apply_entry,
    check_balances,
    hold_entry,
    release_entry,
    replay,
    reverse_entry,
    settle_entry,
    topup_entry,
)
from paymux.domain.outcomes import Outcome
from paymux.domain.states import TransferStatus, ledger_action, transition_path

MERCHANTS = ("mer_a", "mer_b")
CHANNELS = ("alipay", "wechat")
CUR = "CNY"


@dataclass
class Transfer:
    merchant: str
    channel: str
    amount: int
    fee: int
    cost: int
    status: TransferStatus = TransferStatus.pending
    settled: bool = False
    released: bool = False
    reversed: bool = False


def account(kind: AccountKind, owner: str | None = None) -> AccountRef:
    return AccountRef(kind, owner, CUR)


class LedgerMachine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.entries: list[JournalEntry] = []
        self.balances: dict[AccountRef, int] = {}
        self.transfers: list[Transfer] = []
        self.topups: dict[str, int] = defaultdict(int)
        self.refusals = 0

    def _apply(self, entry: JournalEntry) -> None:
        apply_entry(self.balances, entry)
        self.entries.append(entry)

    @rule(
        merchant=st.sampled_from(MERCHANTS),
        amount=st.integers(min_value=1, max_value=50_000),
    )
    def top_up(self, merchant: str, amount: int) -> None:
        self._apply(topup_entry(merchant, amount, CUR))
        self.topups[merchant] += amount

    @rule(
        merchant=st.sampled_from(MERCHANTS),
        channel=st.sampled_from(CHANNELS),
        amount=st.integers(min_value=1, max_value=30_000),
        fee=st.integers(min_value=0, max_value=500),
        cost=st.integers(min_value=0, max_value=800),  # may exceed the fee: a loss is allowed
    )
    def create_transfer(
        self, merchant: str, channel: str, amount: int, fee: int, cost: int
    ) -> None:
        available = self.balances.get(account(AccountKind.merchant_available, merchant), 0)
        entry = hold_entry(merchant, amount, fee, CUR)
        if amount + fee > available:
            before = dict(self.balances)
            try:
                apply_entry(self.balances, entry)
            except InsufficientFunds:
                pass
            else:
                raise AssertionError("a hold larger than the available balance was applied")
            assert self.balances == before
            self.refusals += 1
            return
        self._apply(entry)
        self.transfers.append(Transfer(merchant, channel, amount, fee, cost))

    @precondition(lambda self: bool(self.transfers))
    @rule(data=st.data(), outcome=st.sampled_from(Outcome))
    def channel_outcome(self, data: st.DataObject, outcome: Outcome) -> None:
        transfer = data.draw(st.sampled_from(self.transfers))
        for step in transition_path(transfer.status, outcome):
            action = ledger_action(transfer.status, step)
            if action is EntryKind.settle:
                assert not (transfer.settled or transfer.released), "resolved twice"
                entry = settle_entry(
                    transfer.merchant,
                    transfer.channel,
                    transfer.amount,
                    transfer.fee,
                    transfer.cost,
                    CUR,
                )
                transfer.settled = True
            elif action is EntryKind.release:
                assert not (transfer.settled or transfer.released), "resolved twice"
                entry = release_entry(transfer.merchant, transfer.amount, transfer.fee, CUR)
                transfer.released = True
            elif action is EntryKind.reverse:
                assert transfer.settled and not transfer.reversed, "reversed without success"
                entry = reverse_entry(transfer.merchant, transfer.channel, transfer.amount, CUR)
                transfer.reversed = True
            else:
                assert action is None
                assert step in (TransferStatus.processing, TransferStatus.requires_confirmation)
                transfer.status = step
                continue
            self._apply(entry)  # never InsufficientFunds: the hold covers it
            transfer.status = step

    # --- invariants, checked after every step ----------------------------------------

    @invariant()
    def every_entry_balances(self) -> None:
        for entry in self.entries:
            assert sum(p.amount for p in entry.postings) == 0
            assert len({p.account.currency for p in entry.postings}) == 1

    @invariant()
    def balances_are_a_cache_of_the_journal(self) -> None:
        assert replay(self.entries) == self.balances

    @invariant()
    def ledger_checks_pass(self) -> None:
        assert check_balances(self.balances) == []
        for acct, balance in self.balances.items():
            if acct.kind in (AccountKind.merchant_available, AccountKind.merchant_held):
                assert balance >= 0, acct.key

    @invariant()
    def merchant_money_is_accounted_for(self) -> None:
        for merchant in MERCHANTS:
            mine = [t for t in self.transfers if t.merchant == merchant]
            paid = sum(t.amount + t.fee for t in mine if t.settled)
            returned = sum(t.amount for t in mine if t.reversed)
            in_flight = sum(t.amount + t.fee for t in mine if not (t.settled or t.released))
            available = self.balances.get(account(AccountKind.merchant_available, merchant), 0)
            held = self.balances.get(account(AccountKind.merchant_held, merchant), 0)
            assert held == in_flight
            assert available + held + paid == self.topups[merchant] + returned

    @invariant()
    def house_accounts_match_settled_transfers(self) -> None:
        settled = [t for t in self.transfers if t.settled]
        assert self.balances.get(account(AccountKind.fee_revenue), 0) == sum(t.fee for t in settled)
        assert self.balances.get(account(AccountKind.channel_cost), 0) == -sum(
            t.cost for t in settled
        )
        assert self.balances.get(account(AccountKind.topup_funding), 0) == -sum(
            self.topups.values()
        )
        for channel in CHANNELS:
            expected = sum(t.amount + t.cost for t in settled if t.channel == channel) - sum(
                t.amount for t in settled if t.channel == channel and t.reversed
            )
            assert self.balances.get(account(AccountKind.channel_clearing, channel), 0) == expected

    @invariant()
    def statuses_agree_with_ledger_flags(self) -> None:
        for t in self.transfers:
            assert t.settled == (t.status in (TransferStatus.succeeded, TransferStatus.returned))
            assert t.released == (t.status in (TransferStatus.failed, TransferStatus.canceled))
            assert t.reversed == (t.status is TransferStatus.returned)


LedgerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestLedgerMachine = LedgerMachine.TestCase
