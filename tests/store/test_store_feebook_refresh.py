"""The fee book's cached copy of the stored fee rules: when it goes stale under load, one
load serves every request that found it stale (not one each), and a rule added while a load
is under way is never hidden by that older load."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from paymux.domain.fees import FeeKind, FeeRule, FeeScheduleEntry
from paymux.service import fee_rules
from paymux.service.gateway import Gateway
from paymux.store import fee_rules_repo

AT = datetime(2026, 1, 1, tzinfo=UTC)


async def test_requests_finding_the_copy_stale_together_share_one_load(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads = 0
    real = fee_rules_repo.load_all

    async def counted(db: Any) -> list[FeeScheduleEntry]:
        nonlocal loads
        loads += 1
        return await real(db)

    monkeypatch.setattr(fee_rules_repo, "load_all", counted)
    gw.feebook.invalidate()
    copies = await asyncio.gather(*(gw.feebook.entries() for _ in range(30)))
    assert loads == 1
    assert all(c == copies[0] for c in copies)
    await gw.feebook.entries()  # fresh now: no load at all
    assert loads == 1


async def test_a_rule_added_during_a_load_is_not_hidden_by_it(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = fee_rules_repo.load_all
    release = asyncio.Event()
    started = asyncio.Event()

    async def slow_first(db: Any) -> list[FeeScheduleEntry]:
        rows = await real(db)  # read before the new rule is committed
        if not started.is_set():
            started.set()
            await release.wait()
        return rows

    monkeypatch.setattr(fee_rules_repo, "load_all", slow_first)
    gw.feebook.invalidate()
    early = asyncio.ensure_future(gw.feebook.entries())
    await started.wait()
    merchant = "mer_" + uuid.uuid4().hex
    entry = FeeScheduleEntry(
        FeeKind.price, "alipay", "alipay_account", FeeRule(Decimal(7), 1), AT, merchant
    )
    await fee_rules.add(gw, None, entry, now=AT)
    release.set()
    await early
    entries = await gw.feebook.entries()
    assert [e for e in entries if e.merchant_id == merchant]
