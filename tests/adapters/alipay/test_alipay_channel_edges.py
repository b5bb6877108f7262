"""AlipayChannel against a mocked gateway (respx): the edges of the outcome taxonomy."""

from __future__ import annotations

import functools
import json
import re
import socket
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from paymux_alipay.channel import AlipayChannel, AlipaySettings
from paymux_alipay.keys import SandboxKeys
from paymux_alipay.signing import (
    load_private_key_file,
    load_public_key_file,
    rsa2_sign,
    verify_params,
)

from paymux.channels.base import TransferOrder
from paymux.domain.outcomes import Outcome
from paymux.domain.payees import PayeeType

BASE = "http://alipay.test"
NODE = "alipay_fund_trans_uni_transfer_response"
ORDER = TransferOrder(
    reference="EDGE0001",
    amount=1500,
    currency="CNY",
    payee_type=PayeeType.ALIPAY_ACCOUNT,
    payee_account="2088123412341234",
    description="edge",
    notify_url="https://paymux.example/notify/alipay",
)


@functools.cache
def _alipay_private_key(path: Path) -> Any:
    return load_private_key_file(path)


def signed_body(
    keys: SandboxKeys, node: dict[str, Any], node_name: str = NODE, *, tamper: bool = False
) -> str:
    text = json.dumps(node, ensure_ascii=False, separators=(",", ":"))
    sign = rsa2_sign(text + ("x" if tamper else ""), _alipay_private_key(keys.alipay_private_key))
    return f'{{"{node_name}":{text},"sign":"{sign}"}}'


def reply(keys: SandboxKeys, node: dict[str, Any], **kw: Any) -> httpx.Response:
    return httpx.Response(
        200,
        text=signed_body(keys, node, **kw),
        headers={"Content-Type": "application/json;charset=utf-8"},
    )


def success(keys: SandboxKeys, status: str = "SUCCESS") -> httpx.Response:
    return reply(
        keys,
        {
            "code": "10000",
            "msg": "Success",
            "out_biz_no": ORDER.reference,
            "order_id": "20240101110070000006380000000001",
            "status": status,
            "trans_date": "2024-01-01 00:00:00",
        },
    )


def form_of(call: Any) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(call.request.content.decode()))


def out_biz_nos(route: respx.Route) -> list[str]:
    return [json.loads(form_of(c)["biz_content"])["out_biz_no"] for c in route.calls]


@pytest.fixture
async def channel(make_settings: Callable[..., AlipaySettings]) -> Any:
    ch = AlipayChannel(make_settings(BASE, transport="httpx", retry_attempts=3))
    yield ch
    await ch.aclose()


async def test_request_is_a_signed_form_post(
    channel: AlipayChannel, alipay_keys: SandboxKeys
) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/gateway.do").mock(return_value=success(alipay_keys))
        result = await channel.send(ORDER)
    assert result.outcome is Outcome.SUCCEEDED
    assert result.channel_order_id == "20240101110070000006380000000001"
    request = route.calls[0].request
    assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    form = form_of(route.calls[0])
    assert form["app_id"] == alipay_keys.app_id
    assert form["method"] == "alipay.fund.trans.uni.transfer"
    assert (form["format"], form["charset"], form["sign_type"], form["version"]) == (
        "JSON",
        "utf-8",
        "RSA2",
        "1.0",
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", form["timestamp"])
    assert form["notify_url"] == ORDER.notify_url
    assert verify_params(form, load_public_key_file(alipay_keys.app_public_key))
    biz = json.loads(form["biz_content"])
    assert biz["out_biz_no"] == "EDGE0001" and biz["trans_amount"] == "15.00"


async def test_read_timeout_is_processing_and_not_retried(channel: AlipayChannel) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/gateway.do").mock(side_effect=httpx.ReadTimeout("slow"))
        result = await channel.send(ORDER)
    assert result.outcome is Outcome.PROCESSING
    assert route.call_count == 1


async def test_connection_refused_then_success_retries_same_out_biz_no(
    channel: AlipayChannel, alipay_keys: SandboxKeys
) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/gateway.do").mock(
            side_effect=[
                httpx.ConnectError("refused"),
                httpx.ConnectError("refused"),
                success(alipay_keys),
            ]
        )
        result = await channel.send(ORDER)
    assert result.outcome is Outcome.SUCCEEDED
    assert out_biz_nos(route) == ["EDGE0001"] * 3
    # every attempt is freshly signed but carries the identical biz_content
    assert len({form_of(c)["biz_content"] for c in route.calls}) == 1


async def test_429_retried_then_gives_up_as_processing(channel: AlipayChannel) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/gateway.do").mock(return_value=httpx.Response(429))
        result = await channel.send(ORDER)
    assert result.outcome is Outcome.PROCESSING
    assert route.call_count == 3  # retry_attempts
    assert out_biz_nos(route) == ["EDGE0001"] * 3


async def test_call_limited_code_is_retried(
    channel: AlipayChannel, alipay_keys: SandboxKeys
) -> None:
    limited = reply(
        alipay_keys,
        {
            "code": "40005",
            "msg": "Call Limited",
            "sub_code": "isv.app-call-limited",
            "sub_msg": "限流",
        },
    )
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/gateway.do").mock(side_effect=[limited, success(alipay_keys)])
        result = await channel.send(ORDER)
    assert result.outcome is Outcome.SUCCEEDED
    assert route.call_count == 2


async def test_20000_is_processing_without_retry(
    channel: AlipayChannel, alipay_keys: SandboxKeys
) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/gateway.do").mock(
            return_value=reply(
                alipay_keys,
                {
                    "code": "20000",
                    "msg": "Service Currently Unavailable",
                    "sub_code": "isp.unknow-error",
                    "sub_msg": "系统繁忙",
                },
            )
        )
        result = await channel.send(ORDER)
    assert result.outcome is Outcome.PROCESSING
    assert route.call_count == 1


async def test_tampered_success_is_processing_not_succeeded(
    channel: AlipayChannel, alipay_keys: SandboxKeys, caplog: pytest.LogCaptureFixture
) -> None:
    node = {
        "code": "10000",
        "msg": "Success",
        "out_biz_no": ORDER.reference,
        "order_id": "O1",
        "status": "SUCCESS",
    }
    with respx.mock(base_url=BASE) as mock:
        mock.post("/gateway.do").mock(return_value=reply(alipay_keys, node, tamper=True))
        result = await channel.send(ORDER)
    assert result.outcome is Outcome.PROCESSING
    assert "signature" in caplog.text
    assert "PRIVATE KEY" not in caplog.text


async def test_unsigned_success_is_processing(channel: AlipayChannel) -> None:
    body = '{"alipay_fund_trans_uni_transfer_response":{"code":"10000","status":"SUCCESS"}}'
    with respx.mock(base_url=BASE) as mock:
        mock.post("/gateway.do").mock(return_value=httpx.Response(200, text=body))
        assert (await channel.send(ORDER)).outcome is Outcome.PROCESSING


async def test_payee_not_exist_is_failed(channel: AlipayChannel, alipay_keys: SandboxKeys) -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.post("/gateway.do").mock(
            return_value=reply(
                alipay_keys,
                {
                    "code": "40004",
                    "msg": "Business Failed",
                    "sub_code": "PAYEE_NOT_EXIST",
                    "sub_msg": "收款账号不存在",
                    "out_biz_no": ORDER.reference,
                },
            )
        )
        result = await channel.send(ORDER)
    assert result.outcome is Outcome.FAILED
    assert result.failure_code == "PAYEE_NOT_EXIST"
    assert result.failure_message == "收款账号不存在"


async def test_unknown_sub_code_is_processing(
    channel: AlipayChannel, alipay_keys: SandboxKeys
) -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.post("/gateway.do").mock(
            return_value=reply(
                alipay_keys,
                {
                    "code": "40004",
                    "msg": "Business Failed",
                    "sub_code": "BRAND_NEW_CODE",
                    "sub_msg": "?",
                },
            )
        )
        assert (await channel.send(ORDER)).outcome is Outcome.PROCESSING


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(502, text="<html><body>Bad Gateway</body></html>"),
        httpx.Response(500, text="<html>oops</html>"),
        httpx.Response(200, text="<html>not json</html>"),
        httpx.Response(200, content=b"\xff\xfe\x00"),
    ],
)
async def test_5xx_and_garbage_are_processing(
    channel: AlipayChannel, response: httpx.Response
) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/gateway.do").mock(return_value=response)
        assert (await channel.send(ORDER)).outcome is Outcome.PROCESSING
    assert route.call_count == 1


async def test_unmappable_order_fails_without_sending(channel: AlipayChannel) -> None:
    order = TransferOrder(
        reference="EDGE0002",
        amount=100,
        currency="CNY",
        payee_type=PayeeType.BANK_CARD,
        payee_account="6222020000000001",
    )
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        route = mock.post("/gateway.do")
        result = await channel.send(order)
    assert result.outcome is Outcome.FAILED
    assert route.call_count == 0


async def test_query_order_not_exist_is_not_found(
    channel: AlipayChannel, alipay_keys: SandboxKeys
) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/gateway.do").mock(
            return_value=reply(
                alipay_keys,
                {
                    "code": "40004",
                    "msg": "Business Failed",
                    "sub_code": "ORDER_NOT_EXIST",
                    "sub_msg": "转账订单不存在",
                },
                node_name="alipay_fund_trans_common_query_response",
            )
        )
        result = await channel.query(ORDER)
    assert result.outcome is Outcome.NOT_FOUND
    form = form_of(route.calls[0])
    assert form["method"] == "alipay.fund.trans.common.query"
    assert json.loads(form["biz_content"]) == {
        "out_biz_no": "EDGE0001",
        "product_code": "TRANS_ACCOUNT_NO_PWD",
        "biz_scene": "DIRECT_TRANSFER",
    }


async def test_real_refused_connection_over_aiohttp_transport(
    make_settings: Callable[..., AlipaySettings],
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    channel = AlipayChannel(make_settings(f"http://127.0.0.1:{port}", retry_attempts=3))
    try:
        result = await channel.send(ORDER)
    finally:
        await channel.aclose()
    assert result.outcome is Outcome.PROCESSING
    assert result.failure_message is not None and "retries exhausted" in result.failure_message
