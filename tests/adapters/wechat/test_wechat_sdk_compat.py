"""The public wechatpayv3 SDK, unchanged, works against our sandbox.

The SDK hard-codes its host in the ``_gate_way`` attribute of its core (it has no documented
option for another base URL), so the test points that attribute at the sandbox; all of the
SDK's signing, verification and decryption logic runs as shipped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from paymux_wechat.keys import SandboxKeys, ensure_keys
from wechat_test_support import fast_config, new_reference, running_receiver, running_sandbox
from wechatpayv3 import WeChatPay, WeChatPayType

REPORT_INFOS = [
    {"info_type": "活动名称", "info_content": "新会员有礼"},
    {"info_type": "奖励说明", "info_content": "注册会员抽奖"},
]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> SandboxKeys:
    return ensure_keys(tmp_path_factory.mktemp("wechat-sdk-keys"))


def _sdk(keys: SandboxKeys, base_url: str, notify_url: str) -> WeChatPay:
    pay = WeChatPay(
        wechatpay_type=WeChatPayType.MINIPROG,
        mchid=keys.mchid,
        private_key=keys.merchant_private_key_file.read_text(),
        cert_serial_no=keys.merchant_serial_no,
        appid=keys.appid,
        apiv3_key=keys.read_apiv3_key(),
        notify_url=notify_url,
        public_key=keys.platform_public_key_file.read_text(),
        public_key_id=keys.platform_public_key_id,
        timeout=(3, 5),
    )
    pay._core._gate_way = base_url
    return pay


@pytest.fixture
async def sandbox(keys: SandboxKeys) -> AsyncIterator[str]:
    async with running_sandbox(fast_config(keys.data_dir)) as (base_url, _app):
        yield base_url


async def test_sdk_creates_and_queries_a_bill_and_reads_our_callback(
    keys: SandboxKeys, sandbox: str
) -> None:
    async with running_receiver() as receiver:
        pay = _sdk(keys, sandbox, receiver.url)
        reference = new_reference("SDK")
        code, text = await asyncio.to_thread(
            pay.mch_transfer_bills,
            out_bill_no=reference,
            transfer_scene_id="1000",
            openid="o-sdk-user",
            transfer_amount=5000,
            transfer_remark="SDK 兼容测试",
            user_name="张三",  # OAEP-encrypted by the SDK with our platform public key
            transfer_scene_report_infos=REPORT_INFOS,
        )
        # A 2xx from the SDK means it verified our response signature.
        assert code == 200, text
        created = json.loads(text)
        assert created["out_bill_no"] == reference
        assert created["state"] == "SUCCESS"

        code, text = await asyncio.to_thread(pay.mch_transfer_bills_query, out_bill_no=reference)
        assert code == 200, text
        queried = json.loads(text)
        assert queried["state"] == "SUCCESS"
        assert queried["transfer_bill_no"] == created["transfer_bill_no"]
        assert queried["transfer_amount"] == 5000

        code, text = await asyncio.to_thread(
            pay.mch_transfer_bills_query, out_bill_no="SDKMISSING01"
        )
        assert code == 404
        assert json.loads(text)["code"] == "NOT_FOUND"

        await receiver.wait_for(1)
        headers, body = receiver.received[0]
        event = pay.callback(headers, body)
        assert event is not None, "the SDK refused our callback"
        assert event["event_type"] == "MCHTRANSFER.BILL.FINISHED"
        assert event["resource"]["out_bill_no"] == reference
        assert event["resource"]["state"] == "SUCCESS"
        assert event["resource"]["mch_id"] == keys.mchid


async def test_sdk_rejects_tampered_responses_and_callbacks(
    keys: SandboxKeys, sandbox: str
) -> None:
    async with (
        running_receiver([500] * 10) as receiver,
        httpx.AsyncClient(base_url=sandbox, timeout=5) as admin,
    ):
        pay = _sdk(keys, sandbox, receiver.url)
        await admin.post(
            "/__sandbox/config",
            json={"tamper_response_signature": True, "tamper_notification_signature": True},
        )
        with pytest.raises(Exception, match="verify the signature"):
            await asyncio.to_thread(
                pay.mch_transfer_bills,
                out_bill_no=new_reference("SDK"),
                transfer_scene_id="1000",
                openid="o-sdk-user",
                transfer_amount=100,
                transfer_remark="tampered",
                transfer_scene_report_infos=REPORT_INFOS,
            )
        await receiver.wait_for(1)
        assert pay.callback(*receiver.received[0]) is None
