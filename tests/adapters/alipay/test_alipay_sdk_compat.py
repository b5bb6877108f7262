"""Alipay's public Python SDK (python-alipay-sdk), unchanged, against the sandbox.

The SDK signs with the app key, sends every parameter in the query string of a GET, and
verifies the response node's signature with the Alipay public key (raising otherwise), so
a passing call proves both directions of our signing.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from typing import Any

import pytest
from alipay import AliPay
from alipay.exceptions import AliPayValidationError

from paymux.channels.base import TransferOrder
from paymux.domain.payees import PayeeType


def sdk_client(sandbox: Any) -> Any:
    keys = sandbox.keys
    client = AliPay(
        appid=keys.app_id,
        app_notify_url=None,
        app_private_key_string=keys.app_private_key.read_text(),
        alipay_public_key_string=keys.alipay_public_key.read_text(),
        sign_type="RSA2",
    )
    client._gateway = f"{sandbox.url}/gateway.do"  # the SDK only knows Alipay's hosts
    return client


async def test_sdk_transfer_then_query(alipay_sandbox: Any) -> None:
    client = sdk_client(alipay_sandbox)
    out_biz_no = f"SDK{time.time_ns() % 10**12:012d}"
    biz = {
        "out_biz_no": out_biz_no,
        "trans_amount": "8.88",
        "product_code": "TRANS_ACCOUNT_NO_PWD",
        "biz_scene": "DIRECT_TRANSFER",
        "order_title": "SDK 兼容测试",
        "payee_info": {
            "identity": "sdk@example.com",
            "identity_type": "ALIPAY_LOGON_ID",
            "name": "测试",
        },
    }
    # The SDK is blocking (urllib) and the sandbox runs on this loop: use a thread.
    sent = await asyncio.to_thread(client.server_api, "alipay.fund.trans.uni.transfer", biz)
    assert sent["code"] == "10000"
    assert sent["status"] == "SUCCESS"
    assert sent["out_biz_no"] == out_biz_no
    queried = await asyncio.to_thread(
        client.server_api,
        "alipay.fund.trans.common.query",
        {
            "out_biz_no": out_biz_no,
            "product_code": "TRANS_ACCOUNT_NO_PWD",
            "biz_scene": "DIRECT_TRANSFER",
        },
    )
    assert queried["code"] == "10000"
    assert queried["order_id"] == sent["order_id"]
    assert queried["trans_amount"] == "8.88"
    assert queried["status"] == "SUCCESS"
    held = alipay_sandbox.sandbox.orders[out_biz_no]
    assert held.biz["order_title"] == "SDK 兼容测试"  # escaped non-ASCII survives intact


async def test_sdk_rejects_a_tampered_response(alipay_sandbox: Any) -> None:
    alipay_sandbox.config.tamper_response_signature = True
    client = sdk_client(alipay_sandbox)
    with pytest.raises(AliPayValidationError):
        await asyncio.to_thread(
            client.server_api,
            "alipay.fund.trans.common.query",
            {
                "out_biz_no": "NOPE",
                "product_code": "TRANS_ACCOUNT_NO_PWD",
                "biz_scene": "DIRECT_TRANSFER",
            },
        )


async def test_sdk_verifies_sandbox_notifications(
    alipay_sandbox: Any, alipay_channel: Any, notification_receiver: Any
) -> None:
    await alipay_channel.send(
        TransferOrder(
            reference=f"SDKN{time.time_ns() % 10**12:012d}",
            amount=100,
            currency="CNY",
            payee_type=PayeeType.ALIPAY_ACCOUNT,
            payee_account="2088123412341234",
            notify_url=notification_receiver.url,
        )
    )
    await notification_receiver.wait_for(1)
    form = dict(urllib.parse.parse_qsl(notification_receiver.bodies[0].decode()))
    sign = form.pop("sign")
    assert sdk_client(alipay_sandbox).verify(dict(form), sign)
    form["biz_content"] = form["biz_content"].replace("SUCCESS", "FAIL")
    assert not sdk_client(alipay_sandbox).verify(dict(form), sign)
