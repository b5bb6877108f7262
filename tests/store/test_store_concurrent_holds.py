"""200 transfers at once against a balance that covers only some of them: no overdraft."""

from __future__ import annotations

import asyncio
import random

from sqlalchemy import func, select

from paymux.domain.outcomes import Outcome
from paymux.service.errors import InsufficientFundsError
from paymux.service.gateway import Gateway
from paymux.service.transfers import Created
from paymux.store.ledger_repo import LedgerRepo
from paymux.store.tables import transfers
from tests.store.store_support import (
    account_balances,
    alipay_account_fee,
    journal_replay,
    merchant_balances,
    new_funded_merchant,
    posted_balances,
    transfer,
)

REQUESTS = 200
TOPUP = 1_000_000  # 10,000.00 CNY: roughly a third of what the requests ask for


async def test_concurrent_creates_never_overdraw(gw: Gateway) -> None:
    merchant = await new_funded_merchant(gw, TOPUP, "concurrent holds")
    rng = random.Random(20240611)
    amounts = [rng.randint(5_000, 20_000) for _ in range(REQUESTS)]
    # Succeeded and processing outcomes only: a failure would release money mid-race and
    # blur what "the balance covered" means.
    outcomes = [rng.choice([Outcome.SUCCEEDED, Outcome.PROCESSING]) for _ in range(REQUESTS)]

    results = await asyncio.wait_for(
        asyncio.gather(
            *(transfer(gw, merchant, a, o) for a, o in zip(amounts, outcomes, strict=True)),
            return_exceptions=True,
        ),
        timeout=120,
    )

    accepted: list[Created] = []
    refused: list[tuple[int, InsufficientFundsError]] = []
    for amount, result in zip(amounts, results, strict=True):
        if isinstance(result, Created):
            accepted.append(result)
        elif isinstance(result, InsufficientFundsError):
            refused.append((amount, result))
        else:
            raise AssertionError(f"unexpected result {result!r}")
    assert accepted and refused, (len(accepted), len(refused))
    assert len(accepted) + len(refused) == REQUESTS

    # The fee each transfer froze is the schedule's, and a refusal names what it needed.
    for created in accepted:
        assert created.transfer.fee == alipay_account_fee(created.transfer.amount)
    for amount, exc in refused:
        assert exc.extra["required"] == amount + alipay_account_fee(amount)

    spent = sum(c.transfer.amount + c.transfer.fee for c in accepted)
    in_flight = sum(
        c.transfer.amount + c.transfer.fee for c in accepted if c.transfer.status == "processing"
    )
    available, held = await merchant_balances(gw, merchant)
    assert spent <= TOPUP
    assert available == TOPUP - spent >= 0
    assert held == in_flight
    # Exactly what the balance covered: whatever was refused did not fit in what is left.
    assert available < min(exc.extra["required"] for _, exc in refused)

    async with gw.db.read() as conn:
        stored = (
            await conn.execute(select(func.count()).where(transfers.c.merchant_id == merchant))
        ).scalar_one()
        problems = await LedgerRepo.check(conn)
    assert stored == len(accepted)
    assert problems == []

    # The domain's replay of the journal read back (it refuses any overdraft on the way)
    # gives every cached merchant balance and every account's sum of postings.
    replayed = await journal_replay(gw)
    cached = {k: v for k, v in (await account_balances(gw)).items() if k.startswith("merchant_")}
    assert {k: replayed.get(k, 0) for k in cached} == cached
    assert {k: v for k, v in replayed.items() if v} == {
        k: v for k, v in (await posted_balances(gw)).items() if v
    }
    assert replayed[f"merchant_available:{merchant}:CNY"] == available
    sent = gw.channels["alipay"].sent  # type: ignore[attr-defined]
    assert {c.transfer.channel_reference for c in accepted} <= set(sent)
