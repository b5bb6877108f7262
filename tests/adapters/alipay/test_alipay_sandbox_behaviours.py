"""AlipayChannel against the real sandbox over HTTP: magic behaviours, dedupe, bank cards."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

import httpx
from paymux_alipay.channel import AlipayChannel
from paymux_alipay.signing import load_private_key_file, sign_params

from paymux.channels.base import TransferOrder
from paymux.domain.outcomes import Outcome
from paymux.domain.payees import PayeeType

_refs = itertools.count(1)


def order(account: str, amount: int = 1000, **kw: Any) -> TransferOrder:
    values: dict[str, Any] = {
        "reference": f"SBX{time.time_ns() % 10**9:09d}{next(_refs):04d}",
        "amount": amount,
        "currency": "CNY",
        "payee_type": PayeeType.ALIPAY_ACCOUNT,
        "payee_account": account,
        "payee_name": "测试用户",
        "description": "sandbox test",
    }
    values.update(kw)
    return TransferOrder(**values)


async def sandbox_orders(url: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{url}/__sandbox/orders")
        response.raise_for_status()
        data: list[dict[str, Any]] = response.json()
        return data


async def test_success(alipay_channel: AlipayChannel) -> None:
    o = order("2088123412341234")
    sent = await alipay_channel.send(o)
    assert sent.outcome is Outcome.SUCCEEDED
    assert sent.channel_order_id and len(sent.channel_order_id) == 32
    queried = await alipay_channel.query(o)
    assert queried.outcome is Outcome.SUCCEEDED
    assert queried.channel_order_id == sent.channel_order_id
    assert queried.raw["trans_amount"] == "10.00"


async def test_fail_is_failed_without_an_order(
    alipay_channel: AlipayChannel, alipay_sandbox: Any
) -> None:
    o = order("fail@example.com")
    sent = await alipay_channel.send(o)
    assert sent.outcome is Outcome.FAILED
    assert sent.failure_code == "PAYEE_NOT_EXIST"
    assert (await alipay_channel.query(o)).outcome is Outcome.NOT_FOUND
    assert o.reference not in {x["out_biz_no"] for x in await sandbox_orders(alipay_sandbox.url)}


async def test_delay_is_processing_then_succeeds(alipay_channel: AlipayChannel) -> None:
    o = order("delay@example.com")
    sent = await alipay_channel.send(o)
    assert sent.outcome is Outcome.PROCESSING
    assert sent.raw_status == "DEALING"
    assert (await alipay_channel.query(o)).outcome is Outcome.PROCESSING
    await asyncio.sleep(0.45)  # delay_seconds = 0.3
    assert (await alipay_channel.query(o)).outcome is Outcome.SUCCEEDED


async def test_timeout_is_processing_and_the_order_succeeds(alipay_channel: AlipayChannel) -> None:
    o = order("timeout@example.com")
    started = time.monotonic()
    sent = await alipay_channel.send(o)  # client timeout 0.5 s < hang 1.0 s
    assert time.monotonic() - started < 0.95
    assert sent.outcome is Outcome.PROCESSING
    assert (await alipay_channel.query(o)).outcome is Outcome.SUCCEEDED


async def test_error_is_processing_and_the_order_succeeds(alipay_channel: AlipayChannel) -> None:
    o = order("error@example.com")
    sent = await alipay_channel.send(o)
    assert sent.outcome is Outcome.PROCESSING
    assert sent.raw.get("code") == "20000"
    assert (await alipay_channel.query(o)).outcome is Outcome.SUCCEEDED
    # resending the same request settles it too: the original order, not a second one
    again = await alipay_channel.send(o)
    assert again.outcome is Outcome.SUCCEEDED


async def test_busy_is_retried_under_the_same_reference(
    alipay_channel: AlipayChannel, alipay_sandbox: Any
) -> None:
    o = order("busy@example.com")
    sent = await alipay_channel.send(o)
    assert sent.outcome is Outcome.SUCCEEDED
    mine = [x for x in await sandbox_orders(alipay_sandbox.url) if x["out_biz_no"] == o.reference]
    assert len(mine) == 1


async def test_busy_card_tail_without_retries_is_processing(
    alipay_sandbox: Any, make_settings: Any
) -> None:
    channel = AlipayChannel(make_settings(alipay_sandbox.url, retry_attempts=1))
    try:
        o = order("6222020000004290", payee_type=PayeeType.BANK_CARD)
        assert (await channel.send(o)).outcome is Outcome.PROCESSING
        assert (await channel.query(o)).outcome is Outcome.NOT_FOUND  # refused: no order
    finally:
        await channel.aclose()


async def test_return_succeeds_then_is_returned(alipay_channel: AlipayChannel) -> None:
    o = order("6222020000007007", payee_type=PayeeType.BANK_CARD)
    assert (await alipay_channel.send(o)).outcome is Outcome.SUCCEEDED
    await asyncio.sleep(0.45)
    queried = await alipay_channel.query(o)
    assert queried.outcome is Outcome.RETURNED
    assert queried.raw_status == "REFUND"
    assert queried.failure_code


async def test_bank_card_product(alipay_channel: AlipayChannel, alipay_sandbox: Any) -> None:
    o = order("6222020000000001", amount=123456, payee_type=PayeeType.BANK_CARD)
    sent = await alipay_channel.send(o)
    assert sent.outcome is Outcome.SUCCEEDED
    held = alipay_sandbox.sandbox.orders[o.reference]
    assert held.product_code == "TRANS_BANKCARD_NO_PWD"
    assert held.biz["payee_info"]["identity_type"] == "BANKCARD_ACCOUNT"
    assert held.trans_amount == "1234.56"
    assert (await alipay_channel.query(o)).outcome is Outcome.SUCCEEDED
    # queried as the other product, the bank card order is not found
    as_account = TransferOrder(
        reference=o.reference,
        amount=o.amount,
        currency="CNY",
        payee_type=PayeeType.ALIPAY_ACCOUNT,
        payee_account="x@example.com",
    )
    assert (await alipay_channel.query(as_account)).outcome is Outcome.NOT_FOUND


async def test_bank_card_fail_tail(alipay_channel: AlipayChannel) -> None:
    o = order("6222020000004004", payee_type=PayeeType.BANK_CARD)
    assert (await alipay_channel.send(o)).outcome is Outcome.FAILED


async def test_dedupe_same_parameters_returns_the_original_order(
    alipay_channel: AlipayChannel, alipay_sandbox: Any
) -> None:
    o = order("2088123412345678")
    first = await alipay_channel.send(o)
    second = await alipay_channel.send(o)
    assert first.outcome is second.outcome is Outcome.SUCCEEDED
    assert first.channel_order_id == second.channel_order_id
    mine = [x for x in await sandbox_orders(alipay_sandbox.url) if x["out_biz_no"] == o.reference]
    assert len(mine) == 1


async def test_dedupe_different_parameters_is_an_error_and_no_second_order(
    alipay_channel: AlipayChannel, alipay_sandbox: Any
) -> None:
    o = order("2088123412345679")
    first = await alipay_channel.send(o)
    changed = TransferOrder(**{**{f: getattr(o, f) for f in o.__slots__}, "amount": 999})  # type: ignore[attr-defined]
    second = await alipay_channel.send(changed)
    assert second.outcome is Outcome.PROCESSING  # never guessed as FAILED
    assert second.raw.get("sub_code") == "PAYMENT_INFO_INCONSISTENCY"
    mine = [x for x in await sandbox_orders(alipay_sandbox.url) if x["out_biz_no"] == o.reference]
    assert len(mine) == 1
    assert mine[0]["trans_amount"] == "10.00"
    assert mine[0]["order_id"] == first.channel_order_id


async def test_fault_rate_answers_20000_without_an_order(
    alipay_channel: AlipayChannel, alipay_sandbox: Any
) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{alipay_sandbox.url}/__sandbox/config", json={"fault_rate": 1})
        assert r.status_code == 200 and r.json()["fault_rate"] == "1"
        o = order("2088123412340001")
        assert (await alipay_channel.send(o)).outcome is Outcome.PROCESSING
        assert o.reference not in alipay_sandbox.sandbox.orders
        r = await client.post(f"{alipay_sandbox.url}/__sandbox/config", json={"fault_rate": 0})
        assert (await alipay_channel.send(o)).outcome is Outcome.SUCCEEDED


async def test_tampered_response_signature_is_processing(
    alipay_channel: AlipayChannel, alipay_sandbox: Any
) -> None:
    async with httpx.AsyncClient() as client:
        await client.post(
            f"{alipay_sandbox.url}/__sandbox/config", json={"tamper_response_signature": True}
        )
    o = order("2088123412340002")
    sent = await alipay_channel.send(o)
    assert sent.outcome is Outcome.PROCESSING  # the sandbox did pay, but we cannot trust it
    assert alipay_sandbox.sandbox.orders[o.reference].status == "SUCCESS"


async def test_gateway_rejections(alipay_sandbox: Any, alipay_keys: Any) -> None:
    key = load_private_key_file(alipay_keys.app_private_key)
    base = {
        "app_id": alipay_keys.app_id,
        "method": "alipay.fund.trans.uni.transfer",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": "2024-01-01 00:00:00",
        "version": "1.0",
        "biz_content": json.dumps({"out_biz_no": "REJ1"}),
    }
    async with httpx.AsyncClient(base_url=alipay_sandbox.url) as client:
        bad_sign = {**base, "sign": sign_params(base, key)[::-1]}
        body = (await client.post("/gateway.do", data=bad_sign)).json()
        node = body["alipay_fund_trans_uni_transfer_response"]
        assert (node["code"], node["sub_code"]) == ("40002", "isv.invalid-signature")
        unknown = {**base, "method": "alipay.no.such.method"}
        unknown["sign"] = sign_params(unknown, key)
        body = (await client.post("/gateway.do", data=unknown)).json()
        assert body["error_response"]["sub_code"] == "isv.invalid-method"
        other_app = {**base, "app_id": "2021999999999999"}
        other_app["sign"] = sign_params(other_app, key)
        body = (await client.post("/gateway.do", data=other_app)).json()
        assert body["alipay_fund_trans_uni_transfer_response"]["sub_code"] == "isv.invalid-app-id"
        # signed, params split between query string and body, no "format": accepted, but
        # the biz_content lacks fields -> INVALID_PARAMETER
        signed = {**base, "sign": sign_params(base, key)}
        query = {k: v for k, v in signed.items() if k != "biz_content"}
        r = await client.post(
            "/gateway.do", params=query, data={"biz_content": signed["biz_content"]}
        )
        node = r.json()["alipay_fund_trans_uni_transfer_response"]
        assert (node["code"], node["sub_code"]) == ("40004", "INVALID_PARAMETER")
        assert "REJ1" not in alipay_sandbox.sandbox.orders


async def test_support_endpoints(alipay_channel: AlipayChannel, alipay_sandbox: Any) -> None:
    o = order("2088123412340003")
    await alipay_channel.send(o)
    async with httpx.AsyncClient(base_url=alipay_sandbox.url) as client:
        assert (await client.get("/__sandbox/health")).json()["status"] == "ok"
        one = (await client.get(f"/__sandbox/orders/{o.reference}")).json()
        assert one["status"] == "SUCCESS" and one["trans_amount"] == "10.00"
        assert set(one) >= {
            "out_biz_no",
            "order_id",
            "status",
            "trans_amount",
            "product_code",
            "notify_url",
            "notifications_sent",
            "notification_acked",
        }
        assert (await client.get("/__sandbox/orders/NOPE")).status_code == 404
        assert (await client.post("/__sandbox/orders/NOPE/notify")).status_code == 404
        assert (await client.post("/__sandbox/config", json={"bogus": 1})).status_code == 400
        assert (await client.post("/__sandbox/config", json={"fault_rate": 2})).status_code == 400
        listing = (await client.get("/__sandbox/orders")).text
        assert "PRIVATE" not in listing
