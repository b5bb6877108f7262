"""WechatChannel edge cases against a mocked WeChat (respx), no sandbox."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
import respx
from paymux_wechat.channel import WechatChannel, WechatSettings, create_channel
from paymux_wechat.keys import SandboxKeys, ensure_keys
from paymux_wechat.mapping import TRANSFER_PATH, query_path
from paymux_wechat.signing import (
    aead_encrypt,
    load_private_key,
    load_public_key,
    oaep_decrypt,
    parse_authorization,
    signature_headers,
    verify_request,
)
from pydantic import ValidationError
from wechat_test_support import channel_for, order_for, signed_response

from paymux.channels.base import Channel, InvalidSignature
from paymux.domain.outcomes import Outcome
from paymux.domain.payees import PayeeType

BASE = "http://wechat.test"
SUCCESS = {"out_bill_no": None, "transfer_bill_no": "1330001", "state": "SUCCESS"}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> SandboxKeys:
    return ensure_keys(tmp_path_factory.mktemp("wechat-respx-keys"))


@pytest.fixture
async def channel(keys: SandboxKeys) -> AsyncIterator[WechatChannel]:
    # respx patches httpx's own transport, so these tests use it.
    chan = channel_for(keys, BASE, transport="httpx", retry_attempts=3)
    try:
        yield chan
    finally:
        await chan.aclose()


def _success(reference: str) -> dict[str, str]:
    return {**SUCCESS, "out_bill_no": reference}


def test_channel_satisfies_protocol(channel: WechatChannel) -> None:
    assert isinstance(channel, Channel)
    assert channel.name == "wechat"
    assert channel.account_id == "1900000109"
    assert channel.payee_types == frozenset({PayeeType.WECHAT_OPENID})


async def test_request_is_signed_over_exact_bytes(
    channel: WechatChannel, keys: SandboxKeys
) -> None:
    order = order_for("o-openid", amount=5000, payee_name="张三", description="奖励")
    merchant_public = load_public_key(keys.merchant_public_key_file)
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return signed_response(keys, 200, _success(order.reference))

    with respx.mock(base_url=BASE) as mock:
        mock.post(TRANSFER_PATH).mock(side_effect=answer)
        result = await channel.send(order)
    assert result.outcome is Outcome.SUCCEEDED
    request = seen[0]
    auth = parse_authorization(request.headers["Authorization"])
    assert auth.mchid == keys.mchid and auth.serial_no == keys.merchant_serial_no
    assert verify_request(
        merchant_public, method="POST", path=TRANSFER_PATH, body=request.content, auth=auth
    )
    assert request.headers["Wechatpay-Serial"] == keys.platform_public_key_id
    body = json.loads(request.content)
    assert body["out_bill_no"] == order.reference
    assert body["transfer_amount"] == 5000
    platform_private = load_private_key(keys.platform_private_key_file)
    assert oaep_decrypt(platform_private, body["user_name"]) == "张三"


async def test_read_timeout_is_processing_and_not_resent(channel: WechatChannel) -> None:
    order = order_for("o-openid")
    with respx.mock(base_url=BASE) as mock:
        route = mock.post(TRANSFER_PATH).mock(side_effect=httpx.ReadTimeout("slow"))
        result = await channel.send(order)
    assert result.outcome is Outcome.PROCESSING
    assert route.call_count == 1


async def test_connect_error_then_success_resends_same_bill(
    channel: WechatChannel, keys: SandboxKeys
) -> None:
    order = order_for("o-openid")
    with respx.mock(base_url=BASE) as mock:
        route = mock.post(TRANSFER_PATH).mock(
            side_effect=[
                httpx.ConnectError("refused"),
                signed_response(keys, 200, _success(order.reference)),
            ]
        )
        result = await channel.send(order)
    assert result.outcome is Outcome.SUCCEEDED
    assert result.channel_order_id == "1330001"
    assert route.call_count == 2
    first, second = (call.request for call in route.calls)
    assert first.content == second.content
    assert json.loads(second.content)["out_bill_no"] == order.reference
    # Each attempt is signed afresh (new nonce), over the same bytes.
    assert first.headers["Authorization"] != second.headers["Authorization"]


async def test_429_is_retried_then_succeeds(channel: WechatChannel, keys: SandboxKeys) -> None:
    order = order_for("o-openid")
    busy = signed_response(keys, 429, {"code": "FREQUENCY_LIMITED", "message": "频率超限"})
    with respx.mock(base_url=BASE) as mock:
        route = mock.post(TRANSFER_PATH).mock(
            side_effect=[busy, signed_response(keys, 200, _success(order.reference))]
        )
        result = await channel.send(order)
    assert result.outcome is Outcome.SUCCEEDED
    assert route.call_count == 2


async def test_429_exhausted_is_processing(channel: WechatChannel, keys: SandboxKeys) -> None:
    order = order_for("o-openid")
    busy = signed_response(keys, 429, {"code": "FREQUENCY_LIMITED", "message": "频率超限"})
    with respx.mock(base_url=BASE) as mock:
        route = mock.post(TRANSFER_PATH).mock(return_value=busy)
        result = await channel.send(order)
    assert result.outcome is Outcome.PROCESSING
    assert route.call_count == 3  # retry_attempts=3: three attempts in all
    bills = {json.loads(call.request.content)["out_bill_no"] for call in route.calls}
    assert bills == {order.reference}


async def test_connect_errors_exhausted_is_processing(channel: WechatChannel) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post(TRANSFER_PATH).mock(side_effect=httpx.ConnectError("refused"))
        result = await channel.send(order_for("o-openid"))
    assert result.outcome is Outcome.PROCESSING
    assert route.call_count == 3


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_processing(channel: WechatChannel, keys: SandboxKeys, status: int) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post(TRANSFER_PATH).mock(
            return_value=signed_response(keys, status, {"code": "SYSTEM_ERROR", "message": "x"})
        )
        result = await channel.send(order_for("o-openid"))
    assert result.outcome is Outcome.PROCESSING
    assert route.call_count == 1


async def test_unsigned_5xx_is_processing(channel: WechatChannel) -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.post(TRANSFER_PATH).mock(return_value=httpx.Response(502, text="bad gateway"))
        result = await channel.send(order_for("o-openid"))
    assert result.outcome is Outcome.PROCESSING


async def test_success_with_bad_signature_is_processing(
    channel: WechatChannel, keys: SandboxKeys, caplog: pytest.LogCaptureFixture
) -> None:
    order = order_for("o-openid")
    with respx.mock(base_url=BASE) as mock, caplog.at_level(logging.WARNING):
        mock.post(TRANSFER_PATH).mock(
            return_value=signed_response(keys, 200, _success(order.reference), tamper=True)
        )
        result = await channel.send(order)
    assert result.outcome is Outcome.PROCESSING
    assert "not trusted" in caplog.text
    assert keys.read_apiv3_key() not in caplog.text
    assert "PRIVATE KEY" not in caplog.text


async def test_success_with_wrong_serial_is_processing(
    channel: WechatChannel, keys: SandboxKeys
) -> None:
    order = order_for("o-openid")
    with respx.mock(base_url=BASE) as mock:
        mock.post(TRANSFER_PATH).mock(
            return_value=signed_response(
                keys, 200, _success(order.reference), serial="PUB_KEY_ID_SOMEONE_ELSE"
            )
        )
        result = await channel.send(order)
    assert result.outcome is Outcome.PROCESSING


async def test_success_without_signature_is_processing(channel: WechatChannel) -> None:
    order = order_for("o-openid")
    with respx.mock(base_url=BASE) as mock:
        mock.post(TRANSFER_PATH).mock(
            return_value=httpx.Response(200, json=_success(order.reference))
        )
        result = await channel.send(order)
    assert result.outcome is Outcome.PROCESSING


async def test_param_error_is_failed(channel: WechatChannel, keys: SandboxKeys) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post(TRANSFER_PATH).mock(
            return_value=signed_response(
                keys, 400, {"code": "PARAM_ERROR", "message": "transfer_remark 长度超限"}
            )
        )
        result = await channel.send(order_for("o-openid"))
    assert result.outcome is Outcome.FAILED
    assert result.failure_code == "PARAM_ERROR"
    assert route.call_count == 1


async def test_not_enough_is_failed(channel: WechatChannel, keys: SandboxKeys) -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.post(TRANSFER_PATH).mock(
            return_value=signed_response(keys, 403, {"code": "NOT_ENOUGH", "message": "资金不足"})
        )
        result = await channel.send(order_for("o-openid"))
    assert result.outcome is Outcome.FAILED
    assert result.failure_code == "NOT_ENOUGH"


async def test_unverified_refusal_is_not_trusted(channel: WechatChannel, keys: SandboxKeys) -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.post(TRANSFER_PATH).mock(
            return_value=signed_response(
                keys, 403, {"code": "NOT_ENOUGH", "message": "资金不足"}, tamper=True
            )
        )
        result = await channel.send(order_for("o-openid"))
    assert result.outcome is Outcome.PROCESSING


async def test_duplicate_with_different_params_is_processing(
    channel: WechatChannel, keys: SandboxKeys
) -> None:
    message = "商户单号(out_bill_no)重复，且与原转账单的请求参数不一致"
    with respx.mock(base_url=BASE) as mock:
        mock.post(TRANSFER_PATH).mock(
            return_value=signed_response(keys, 400, {"code": "INVALID_REQUEST", "message": message})
        )
        result = await channel.send(order_for("o-openid"))
    assert result.outcome is Outcome.PROCESSING


async def test_unsupported_order_is_failed_without_sending(channel: WechatChannel) -> None:
    order = order_for("2088xxx")
    alipay_order = type(order)(
        reference=order.reference,
        amount=order.amount,
        currency="CNY",
        payee_type=PayeeType.ALIPAY_ACCOUNT,
        payee_account="2088xxx",
    )
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        route = mock.post(TRANSFER_PATH)
        result = await channel.send(alipay_order)
    assert result.outcome is Outcome.FAILED
    assert route.call_count == 0


async def test_query_outcomes(channel: WechatChannel, keys: SandboxKeys) -> None:
    order = order_for("o-openid")
    path = query_path(order.reference)
    with respx.mock(base_url=BASE) as mock:
        route = mock.get(path).mock(
            side_effect=[
                signed_response(
                    keys, 200, {**_success(order.reference), "state": "FAIL", "fail_reason": "X"}
                ),
                signed_response(keys, 404, {"code": "NOT_FOUND", "message": "记录不存在"}),
                signed_response(keys, 404, {"code": "NOT_FOUND", "message": "x"}, tamper=True),
                signed_response(keys, 400, {"code": "PARAM_ERROR", "message": "x"}),
                httpx.ReadTimeout("slow"),
            ]
        )
        failed = await channel.query(order)
        missing = await channel.query(order)
        unverified_missing = await channel.query(order)
        bad_query = await channel.query(order)
        timed_out = await channel.query(order)
    assert failed.outcome is Outcome.FAILED and failed.failure_code == "X"
    assert missing.outcome is Outcome.NOT_FOUND
    assert unverified_missing.outcome is Outcome.PROCESSING
    assert bad_query.outcome is Outcome.PROCESSING
    assert timed_out.outcome is Outcome.PROCESSING
    request = route.calls[0].request
    assert request.method == "GET" and request.content == b""
    assert parse_authorization(request.headers["Authorization"]).mchid == keys.mchid


async def test_query_answer_for_another_bill_is_not_trusted(
    channel: WechatChannel, keys: SandboxKeys
) -> None:
    order = order_for("o-openid")
    with respx.mock(base_url=BASE) as mock:
        mock.get(query_path(order.reference)).mock(
            return_value=signed_response(keys, 200, _success("SOMEONEELSE01"))
        )
        result = await channel.query(order)
    assert result.outcome is Outcome.PROCESSING


def _callback(keys: SandboxKeys, resource: dict[str, object], *, apiv3: str | None = None) -> bytes:
    ciphertext = aead_encrypt(
        apiv3 or keys.read_apiv3_key(),
        nonce="n0nce1234567",
        associated_data="mch_payment",
        plaintext=json.dumps(resource).encode(),
    )
    return json.dumps(
        {
            "id": "EV-42",
            "create_time": "2025-01-01T00:00:00+08:00",
            "resource_type": "encrypt-resource",
            "event_type": "MCHTRANSFER.BILL.FINISHED",
            "summary": "商家转账单据终态通知",
            "resource": {
                "original_type": "mch_payment",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": ciphertext,
                "associated_data": "mch_payment",
                "nonce": "n0nce1234567",
            },
        }
    ).encode()


def test_parse_notification_with_lowercase_headers(
    channel: WechatChannel, keys: SandboxKeys
) -> None:
    resource = {
        "out_bill_no": "PMX9",
        "transfer_bill_no": "1330009",
        "state": "SUCCESS",
        "mch_id": keys.mchid,
        "transfer_amount": 990,
        "openid": "o-x",
    }
    body = _callback(keys, resource)
    headers = signature_headers(
        load_private_key(keys.platform_private_key_file),
        serial=keys.platform_public_key_id,
        body=body,
    )
    note = channel.parse_notification({k.lower(): v for k, v in headers.items()}, body)
    assert note.reference == "PMX9"
    assert note.outcome is Outcome.SUCCEEDED
    assert note.amount == 990
    assert note.channel_account == keys.mchid
    assert note.notification_id == "EV-42"
    with pytest.raises(InvalidSignature):
        channel.parse_notification(headers, body.replace(b"EV-42", b"EV-43"))
    wrong_key_body = _callback(keys, resource, apiv3="W" * 32)
    wrong_key_headers = signature_headers(
        load_private_key(keys.platform_private_key_file),
        serial=keys.platform_public_key_id,
        body=wrong_key_body,
    )
    with pytest.raises(InvalidSignature):
        channel.parse_notification(wrong_key_headers, wrong_key_body)


def test_notification_ack(channel: WechatChannel) -> None:
    ok = channel.notification_ack(True)
    assert (ok.status_code, ok.body, ok.content_type) == (204, b"", "application/json")
    refused = channel.notification_ack(False)
    assert refused.status_code >= 400
    assert json.loads(refused.body)["code"] == "FAIL"


def test_settings_errors_never_echo_the_apiv3_key(keys: SandboxKeys) -> None:
    secret = "S3cretS3cretS3cretS3cretS3cret12"
    settings = keys.channel_settings(BASE, apiv3_key=secret)
    del settings["mchid"]
    with pytest.raises(ValueError) as excinfo:
        create_channel(settings)
    assert "mchid" in str(excinfo.value)
    assert secret not in str(excinfo.value)
    no_key = keys.channel_settings(BASE)
    del no_key["apiv3_key_file"]
    with pytest.raises(ValueError, match="apiv3_key"):
        create_channel(no_key)
    short = keys.channel_settings(BASE, apiv3_key="tooshort")
    del short["apiv3_key_file"]
    with pytest.raises(ValueError) as short_info:
        create_channel(short)
    assert "tooshort" not in str(short_info.value)
    chan = create_channel(keys.channel_settings(BASE, apiv3_key=secret))
    assert secret not in repr(chan.settings)


async def test_unexpected_transport_error_is_processing(channel: WechatChannel) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post(TRANSFER_PATH).mock(side_effect=RuntimeError("transport blew up"))
        result = await channel.send(order_for("o-openid"))
    assert result.outcome is Outcome.PROCESSING
    assert route.call_count == 1


def test_settings_model_needs_a_key_source(keys: SandboxKeys) -> None:
    values = keys.channel_settings(BASE)
    del values["apiv3_key_file"]
    with pytest.raises(ValidationError) as excinfo:
        WechatSettings.model_validate({**values, "apiv3_key": None})
    assert "apiv3_key or apiv3_key_file" in str(excinfo.value)
    secret = "S3cretS3cretS3cretS3cretS3cret12"
    with pytest.raises(ValidationError) as typed:
        WechatSettings.model_validate({**values, "apiv3_key": secret, "retry_attempts": "many"})
    assert secret not in str(typed.value)
