"""Helpers for the store tests: a scripted stand-in for the outside channel, the store
database URL, merchants, and a replay of the journal read back from the database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from paymux.channels.base import Ack, ChannelResult, Notification, TransferOrder
from paymux.domain.ledger import AccountRef, JournalEntry, Posting, replay
from paymux.domain.outcomes import Outcome
from paymux.domain.payees import PayeeType
from paymux.service.balances import create_topup
from paymux.service.gateway import Gateway
from paymux.service.merchants import create_merchant
from paymux.service.transfers import Created, NewTransfer, create_transfer
from paymux.store.tables import accounts, journal_entries, postings

ADMIN_KEY = "ak_store_" + uuid.uuid4().hex


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


ADMIN = bearer(ADMIN_KEY)

# Outcomes a transfer can script through its description ("failed", "processing", ...).
SCRIPTABLE = (Outcome.SUCCEEDED, Outcome.FAILED, Outcome.PROCESSING, Outcome.RETURNED)

PAYEE_ACCOUNTS = {
    PayeeType.ALIPAY_ACCOUNT: "payee@example.com",
    PayeeType.WECHAT_OPENID: "o4GgauInH_RCEdvrrNGrntXDuXXX",
    PayeeType.BANK_CARD: "6222020200112233445",
}


def scripted_outcome(order: TransferOrder) -> Outcome:
    return Outcome(order.description or Outcome.SUCCEEDED.value)


@dataclass
class ScriptedChannel:
    """A fake of the OUTSIDE payout channel: ``send`` answers the outcome the transfer's
    description names. Everything of ours (gateway, ledger, database) stays real."""

    name: str
    payee_types: frozenset[PayeeType]
    account_id: str = "fake-account"
    sent: list[str] = field(default_factory=list)

    async def send(self, order: TransferOrder) -> ChannelResult:
        self.sent.append(order.reference)
        await asyncio.sleep(0)  # yield like a network call would
        outcome = scripted_outcome(order)
        failed = outcome is Outcome.FAILED
        return ChannelResult(
            outcome,
            channel_order_id=f"{self.name.upper()}{order.reference}",
            failure_code="PAYEE_NOT_EXIST" if failed else None,
            failure_message="payee does not exist" if failed else None,
            raw_status=outcome.value,
        )

    async def query(self, order: TransferOrder) -> ChannelResult:
        return ChannelResult(Outcome.PROCESSING)

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notification:
        raise NotImplementedError("the store tests apply outcomes directly")

    def notification_ack(self, ok: bool) -> Ack:
        return Ack(200 if ok else 500, b"", "text/plain")

    async def aclose(self) -> None:
        return None


def fake_channels() -> dict[str, Any]:
    return {
        "alipay": ScriptedChannel(
            "alipay", frozenset({PayeeType.ALIPAY_ACCOUNT, PayeeType.BANK_CARD})
        ),
        "wechat": ScriptedChannel("wechat", frozenset({PayeeType.WECHAT_OPENID})),
    }


# A small schedule whose fees a test can compute by hand.
FEES_TOML = """
rounding = "half_up"

[[price]]   # fee = round_half_up(amount / 100) + 50
channel = "alipay"
payee_type = "alipay_account"
bps = "100"
fixed = 50
effective_at = 2020-01-01T00:00:00+08:00

[[price]]
channel = "alipay"
payee_type = "bank_card"
bps = "10"
fixed = 200
effective_at = 2020-01-01T00:00:00+08:00

[[price]]
channel = "wechat"
payee_type = "wechat_openid"
bps = "60"
minimum = 100
maximum = 2500
effective_at = 2020-01-01T00:00:00+08:00

[[cost]]    # cost = 30
channel = "alipay"
payee_type = "alipay_account"
fixed = 30
effective_at = 2020-01-01T00:00:00+08:00

[[cost]]
channel = "alipay"
payee_type = "bank_card"
bps = "5"
fixed = 100
effective_at = 2020-01-01T00:00:00+08:00

[[cost]]
channel = "wechat"
payee_type = "wechat_openid"
bps = "10"
maximum = 1000
effective_at = 2020-01-01T00:00:00+08:00
"""


def alipay_account_fee(amount: int) -> int:
    """The price above for alipay_account, computed independently of paymux.domain.fees."""
    return (amount + 50) // 100 + 50


ALIPAY_ACCOUNT_COST = 30


async def new_funded_merchant(gw: Gateway, funds: int, name: str = "store test") -> str:
    row, _secret = await create_merchant(gw, name)
    if funds:
        await topup(gw, row["id"], funds)
    return str(row["id"])


async def topup(gw: Gateway, merchant_id: str, amount: int) -> None:
    key = uuid.uuid4().hex
    await create_topup(
        gw,
        merchant_id,
        amount=amount,
        currency="CNY",
        description=None,
        idempotency_key=key,
        fingerprint=key,
    )


async def transfer(
    gw: Gateway,
    merchant_id: str,
    amount: int,
    outcome: Outcome,
    payee_type: PayeeType = PayeeType.ALIPAY_ACCOUNT,
) -> Created:
    """create_transfer as the API calls it; the channel will answer ``outcome``."""
    key = uuid.uuid4().hex
    return await create_transfer(
        gw,
        merchant_id,
        key,
        key,
        NewTransfer(
            amount=amount,
            currency="CNY",
            payee_type=payee_type.value,
            payee_account=PAYEE_ACCOUNTS[payee_type],
            payee_name="Zhang San",
            channel=None,
            description=outcome.value,
        ),
    )


async def merchant_balances(gw: Gateway, merchant_id: str) -> tuple[int, int]:
    """(available, held) in CNY: available as cached in the accounts table, held as the
    holds of the merchant's transfers in flight (held keeps no cached row)."""
    cached = await account_balances(gw)
    async with gw.db.read() as conn:
        held = await gw.ledger.held_by_merchant(conn, merchant_id)
    return (
        cached.get(f"merchant_available:{merchant_id}:CNY", 0),
        held.get((merchant_id, "CNY"), 0),
    )


async def account_balances(gw: Gateway) -> dict[str, int]:
    """Balances cached in the accounts table (whichever accounts keep one)."""
    async with gw.db.read() as conn:
        rows = await conn.execute(select(accounts.c.key, accounts.c.balance))
        return {k: int(b) for k, b in rows.all()}


async def posted_balances(gw: Gateway) -> dict[str, int]:
    """Every account's balance as the plain sum of its postings."""
    async with gw.db.read() as conn:
        rows = await conn.execute(
            select(postings.c.account_key, func.sum(postings.c.amount)).group_by(
                postings.c.account_key
            )
        )
        return {k: int(total) for k, total in rows.all()}


async def journal_replay(gw: Gateway) -> dict[str, int]:
    """Every journal entry read back from the database and replayed by the domain rules
    (which refuse an entry driving a merchant account negative).

    Entries are replayed in the order their postings were inserted. For the histories these
    tests make that is a valid order: entries that race are holds that all fit in the
    balance together (no release frees money mid-race), and a transfer's later entries are
    written after its hold committed.
    """
    async with gw.db.read() as conn:
        kinds = dict(
            (await conn.execute(select(journal_entries.c.id, journal_entries.c.kind))).all()
        )
        rows = (
            await conn.execute(
                select(
                    postings.c.id, postings.c.entry_id, postings.c.account_key, postings.c.amount
                ).order_by(postings.c.id)
            )
        ).all()
    grouped: dict[str, list[Posting]] = {}
    for _pid, entry_id, key, amount in rows:
        grouped.setdefault(entry_id, []).append(Posting(AccountRef.from_key(key), int(amount)))
    entries = [JournalEntry(kinds[entry_id], tuple(ps)) for entry_id, ps in grouped.items()]
    return {ref.key: balance for ref, balance in replay(entries).items()}
