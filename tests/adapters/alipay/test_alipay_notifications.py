"""Sandbox notifications delivered to a real receiver and verified by the channel."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from typing import Any

import httpx
import pytest
from paymux_alipay.channel import AlipayChannel
from paymux_alipay.signing import load_private_key_file, sign_notification

from paymux.channels.base import Ack, InvalidSignature, MalformedNotification, TransferOrder
from paymux.domain.outcomes import Outcome
from paymux.domain.payees import PayeeType

FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}


def order(account: str, notify_url: str, **kw: Any) -> TransferOrder:
    values: dict[str, Any] = {
        "reference": f"NTF{time.time_ns() % 10**12:012d}",
        "amount": 2345,
        "currency": "CNY",
        "payee_type": PayeeType.ALIPAY_ACCOUNT,
        "payee_account": account,
        "notify_url": notify_url,
    }
    values.update(kw)
    return TransferOrder(**values)


def fields(body: bytes) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(body.decode()))


async def test_notification_is_delivered_and_verifies(
    alipay_channel: AlipayChannel, notification_receiver: Any, alipay_keys: Any
) -> None:
    o = order("2088123412341234", notification_receiver.url)
    sent = await alipay_channel.send(o)
    await notification_receiver.wait_for(1)
    note = alipay_channel.parse_notification(FORM, notification_receiver.bodies[0])
    assert note.reference == o.reference
    assert note.outcome is Outcome.SUCCEEDED
    assert note.amount == 2345 and note.currency == "CNY"
    assert note.channel_account == alipay_keys.app_id
    assert note.channel_order_id == sent.channel_order_id
    assert note.notification_id
    form = fields(notification_receiver.bodies[0])
    assert form["msg_method"] == "alipay.fund.trans.order.changed"
    assert {
        "notify_id",
        "app_id",
        "version",
        "utc_timestamp",
        "charset",
        "sign_type",
        "sign",
        "biz_content",
    } <= set(form)
    biz = json.loads(form["biz_content"])
    assert {
        "out_biz_no",
        "order_id",
        "pay_fund_order_id",
        "status",
        "trans_amount",
        "pay_date",
    } <= set(biz)


async def test_notification_is_resent_until_success(
    alipay_channel: AlipayChannel, notification_receiver: Any, alipay_sandbox: Any
) -> None:
    notification_receiver.fail_first = 2
    o = order("2088123412341235", notification_receiver.url)
    await alipay_channel.send(o)
    await notification_receiver.wait_for(3)
    await asyncio.sleep(0.5)  # past the rest of the schedule (0.1, 0.2, 0.3)
    assert len(notification_receiver.bodies) == 3
    assert len({fields(b)["notify_id"] for b in notification_receiver.bodies}) == 1
    held = alipay_sandbox.sandbox.orders[o.reference]
    assert held.notifications_sent == 3 and held.notification_acked


async def test_notification_gives_up_after_the_schedule(
    alipay_channel: AlipayChannel, notification_receiver: Any, alipay_sandbox: Any
) -> None:
    notification_receiver.fail_first = 100
    o = order("2088123412341236", notification_receiver.url)
    await alipay_channel.send(o)
    await asyncio.sleep(1.2)
    assert len(notification_receiver.bodies) == 4  # first send + 3 scheduled resends
    assert not alipay_sandbox.sandbox.orders[o.reference].notification_acked


async def test_tampered_notification_body_raises(
    alipay_channel: AlipayChannel, notification_receiver: Any
) -> None:
    await alipay_channel.send(order("2088123412341237", notification_receiver.url))
    await notification_receiver.wait_for(1)
    body = notification_receiver.bodies[0]
    form = fields(body)
    biz = json.loads(form["biz_content"])
    for change in ({"status": "FAIL"}, {"trans_amount": "99999.00"}):
        forged = {**form, "biz_content": json.dumps({**biz, **change})}
        with pytest.raises(InvalidSignature):
            alipay_channel.parse_notification(FORM, urllib.parse.urlencode(forged).encode())
    with pytest.raises(InvalidSignature):
        alipay_channel.parse_notification(
            FORM, urllib.parse.urlencode({k: v for k, v in form.items() if k != "sign"}).encode()
        )
    with pytest.raises(InvalidSignature):
        alipay_channel.parse_notification(FORM, b"\xff\xfe")
    with pytest.raises(InvalidSignature):
        alipay_channel.parse_notification(FORM, body + b"&sign=again")


async def test_tamper_notification_signature_switch(
    alipay_channel: AlipayChannel, notification_receiver: Any, alipay_sandbox: Any
) -> None:
    async with httpx.AsyncClient() as client:
        await client.post(
            f"{alipay_sandbox.url}/__sandbox/config", json={"tamper_notification_signature": True}
        )
    await alipay_channel.send(order("2088123412341238", notification_receiver.url))
    await notification_receiver.wait_for(1)
    with pytest.raises(InvalidSignature):
        alipay_channel.parse_notification(FORM, notification_receiver.bodies[0])


async def test_return_notifies_success_then_refund_and_renotify(
    alipay_channel: AlipayChannel, notification_receiver: Any, alipay_sandbox: Any
) -> None:
    o = order(
        "6222020000007007",
        notification_receiver.url,
        payee_type=PayeeType.BANK_CARD,
        payee_name="王五",
    )
    await alipay_channel.send(o)
    await notification_receiver.wait_for(2)
    first, second = (
        alipay_channel.parse_notification(FORM, b) for b in notification_receiver.bodies[:2]
    )
    assert (first.outcome, second.outcome) == (Outcome.SUCCEEDED, Outcome.RETURNED)
    assert second.failure_code and second.notification_id != first.notification_id
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{alipay_sandbox.url}/__sandbox/orders/{o.reference}/notify")
    assert r.status_code == 200 and r.json()["delivered"] is True
    assert len(notification_receiver.bodies) == 3
    again = alipay_channel.parse_notification(FORM, notification_receiver.bodies[2])
    assert again.outcome is Outcome.RETURNED and again.notification_id == second.notification_id


async def test_delay_notifies_only_the_terminal_state(
    alipay_channel: AlipayChannel, notification_receiver: Any
) -> None:
    await alipay_channel.send(order("delay@example.com", notification_receiver.url))
    await notification_receiver.wait_for(1)
    note = alipay_channel.parse_notification(FORM, notification_receiver.bodies[0])
    assert note.outcome is Outcome.SUCCEEDED
    assert len(notification_receiver.bodies) == 1


async def test_verified_but_foreign_message_is_malformed(
    alipay_channel: AlipayChannel, alipay_keys: Any
) -> None:
    key = load_private_key_file(alipay_keys.alipay_private_key)
    for form in (
        {"msg_method": "alipay.trade.order.settle.notify", "biz_content": "{}"},
        {"msg_method": "alipay.fund.trans.order.changed", "biz_content": "not json"},
        {
            "msg_method": "alipay.fund.trans.order.changed",
            "biz_content": json.dumps(
                {"out_biz_no": "X1", "status": "SUCCESS", "trans_amount": "1.234"}
            ),
        },
        {
            "msg_method": "alipay.fund.trans.order.changed",
            "biz_content": json.dumps({"out_biz_no": "X1", "status": "WHO_KNOWS"}),
        },
    ):
        signed = {**form, "app_id": alipay_keys.app_id, "sign_type": "RSA2"}
        signed["sign"] = sign_notification(signed, key)
        with pytest.raises(MalformedNotification):
            alipay_channel.parse_notification(FORM, urllib.parse.urlencode(signed).encode())


def test_notification_ack(make_settings: Any) -> None:
    channel = AlipayChannel(make_settings())
    assert channel.notification_ack(True) == Ack(200, b"success", "text/plain")
    assert channel.notification_ack(False) == Ack(400, b"fail", "text/plain")
    assert channel.name == "alipay"
    assert channel.account_id == make_settings().app_id
    assert channel.payee_types == frozenset({PayeeType.ALIPAY_ACCOUNT, PayeeType.BANK_CARD})
