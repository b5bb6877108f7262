"""The fee schedule admin API and quotes: a future rule changes quotes only from its
effective instant, only for its merchant, and never a fee already frozen on a transfer."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import select

from paymux.channels.base import ChannelResult
from paymux.domain.outcomes import Outcome
from paymux.service.gateway import Gateway
from paymux.service.merchants import create_merchant
from paymux.service.transfers import apply_result
from paymux.store.tables import journal_entries, postings
from tests.store.store_support import ADMIN, alipay_account_fee, bearer, topup

T0 = datetime(2032, 5, 1, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
EFFECTIVE = T0 + timedelta(hours=1)
FUNDS = 10_000_000
AMOUNT = 100_000


def body(payee_type: str = "alipay_account", **extra: Any) -> dict[str, Any]:
    accounts = {
        "alipay_account": "payee@example.com",
        "bank_card": "6222020200112233445",
        "wechat_openid": "o4GgauInH_RCEdvrrNGrntXDuXXX",
    }
    payee = {"type": payee_type, "account": accounts[payee_type], "name": "Zhang San"}
    return {"amount": AMOUNT, "currency": "CNY", "payee": payee, **extra}


async def quote_fee(api: httpx.AsyncClient, key: str, payee_type: str = "alipay_account") -> int:
    resp = await api.post("/v1/transfers/quote", json=body(payee_type), headers=bearer(key))
    assert resp.status_code == 200, resp.text
    quote = resp.json()
    assert quote["total"] == AMOUNT + quote["fee"]
    return int(quote["fee"])


async def send(api: httpx.AsyncClient, key: str, outcome: Outcome) -> dict[str, Any]:
    resp = await api.post(
        "/v1/transfers",
        json=body(description=outcome.value),  # the scripted channel answers this
        headers={**bearer(key), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def settle_fee_posted(gw: Gateway, transfer_id: str) -> int:
    async with gw.db.read() as conn:
        found = await conn.execute(
            select(postings.c.amount)
            .select_from(
                postings.join(journal_entries, journal_entries.c.id == postings.c.entry_id)
            )
            .where(
                journal_entries.c.transfer_id == transfer_id,
                journal_entries.c.kind == "settle",
                postings.c.account_key == "fee_revenue:CNY",
            )
        )
        return int(found.scalar_one())


async def test_future_merchant_rule_changes_quotes_from_then_and_freezes_fees(
    gw: Gateway, api: httpx.AsyncClient, clock: Callable[[datetime], None]
) -> None:
    clock(T0)
    (a, a_key), (b, b_key) = [
        (row["id"], secret)
        for row, secret in [
            await create_merchant(gw, "Negotiated"),
            await create_merchant(gw, "List"),
        ]
    ]
    for merchant in (a, b):
        await topup(gw, merchant, FUNDS)
    list_fee = alipay_account_fee(AMOUNT)  # 1,050: 1 % + 0.50
    card_fee = AMOUNT * 10 // 10_000 + 200
    assert await quote_fee(api, a_key) == list_fee
    assert await quote_fee(api, a_key, "bank_card") == card_fee

    rule = {
        "kind": "price",
        "merchant_id": a,
        "channel": "alipay",
        "payee_type": "alipay_account",
        "bps": "20",
        "fixed": 10,
        "effective_at": EFFECTIVE.isoformat(),
    }
    forbidden = await api.post("/v1/fee_schedule/rules", json=rule, headers=bearer(a_key))
    assert forbidden.status_code == 403
    bad = await api.post(
        "/v1/fee_schedule/rules", json={**rule, "minimum": 500, "maximum": 100}, headers=ADMIN
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    added = await api.post("/v1/fee_schedule/rules", json=rule, headers=ADMIN)
    assert added.status_code == 201, added.text
    version = added.json()["version"]
    assert added.json()["merchant_id"] == a
    assert isinstance(version, int) and version > 0
    schedule = (await api.get("/v1/fee_schedule", headers=ADMIN)).json()["data"]
    (listed,) = [e for e in schedule if e["merchant_id"] == a]
    assert datetime.fromisoformat(listed.pop("effective_at")) == EFFECTIVE
    assert listed == {
        **{k: v for k, v in rule.items() if k != "effective_at"},
        "minimum": 0,
        "maximum": None,
        "version": version,
    }

    # Before the rule is in force: list price for everyone, and a transfer freezes it.
    assert await quote_fee(api, a_key) == list_fee
    early = await send(api, a_key, Outcome.PROCESSING)
    assert (early["status"], early["fee"]) == ("processing", list_fee)
    clock(EFFECTIVE - timedelta(microseconds=1))
    assert await quote_fee(api, a_key) == list_fee

    # From its instant on: the negotiated price, for that merchant and payee type only.
    negotiated = AMOUNT * 20 // 10_000 + 10  # 210
    clock(EFFECTIVE)
    assert await quote_fee(api, a_key) == negotiated
    assert await quote_fee(api, b_key) == list_fee
    assert await quote_fee(api, a_key, "bank_card") == card_fee
    # The schedule still answers for the past: quotes are reproducible at any instant.
    past = await gw.feebook.quote(
        merchant_id=a, channel="alipay", payee_type="alipay_account", amount=AMOUNT, at=T0
    )
    assert past.fee == list_fee

    # The early transfer settles after the change and still charges what it was quoted.
    clock(EFFECTIVE + timedelta(hours=1))
    settled = await apply_result(gw, early["id"], ChannelResult(Outcome.SUCCEEDED), source="test")
    assert settled.fee == list_fee
    assert await settle_fee_posted(gw, early["id"]) == list_fee
    shown = (await api.get(f"/v1/transfers/{early['id']}", headers=bearer(a_key))).json()
    assert (shown["status"], shown["fee"]) == ("succeeded", list_fee)

    late = await send(api, a_key, Outcome.SUCCEEDED)
    assert (late["status"], late["fee"]) == ("succeeded", negotiated)
    assert await settle_fee_posted(gw, late["id"]) == negotiated
    other = await send(api, b_key, Outcome.SUCCEEDED)
    assert other["fee"] == list_fee

    balance = await api.get("/v1/balance", headers=bearer(a_key))
    assert balance.status_code == 200
    assert balance.json() == {
        "object": "balance",
        "currency": "CNY",
        "available": FUNDS - (AMOUNT + list_fee) - (AMOUNT + negotiated),
        "held": 0,
    }
