from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from paymux_alipay.mapping import (
    IDENTITY_BANKCARD,
    IDENTITY_LOGON_ID,
    IDENTITY_USER_ID,
    OrderNotMappable,
    fen_to_yuan,
    identity_type_for_account,
    is_retry_later,
    map_query_response,
    map_transfer_response,
    outcome_for_status,
    query_biz_content,
    response_node_name,
    transfer_biz_content,
    yuan_to_fen,
)

from paymux.channels.base import TransferOrder
from paymux.domain.outcomes import Outcome
from paymux.domain.payees import PayeeType


@given(st.integers(min_value=0, max_value=10**15))
def test_fen_yuan_round_trip(fen: int) -> None:
    text = fen_to_yuan(fen)
    assert yuan_to_fen(text) == fen
    whole, _, cents = text.partition(".")
    assert len(cents) == 2 and whole.isdigit()


@pytest.mark.parametrize(
    ("fen", "yuan"), [(0, "0.00"), (1, "0.01"), (10, "0.10"), (1234, "12.34"), (100, "1.00")]
)
def test_fen_to_yuan_examples(fen: int, yuan: str) -> None:
    assert fen_to_yuan(fen) == yuan


@pytest.mark.parametrize(("yuan", "fen"), [("12.3", 1230), ("12", 1200), ("0.01", 1), ("0", 0)])
def test_yuan_to_fen_accepts_short_forms(yuan: str, fen: int) -> None:
    assert yuan_to_fen(yuan) == fen


@pytest.mark.parametrize(
    "bad",
    [
        "1.234",
        "-1.00",
        "+1.00",
        "abc",
        "",
        " 1.00",
        "1.00 ",
        "1e2",
        "NaN",
        "Infinity",
        "01.00",
        "1.",
        ".5",
        "1,00",
        "１.００",
        "0x10",
    ],
)
def test_yuan_to_fen_rejects_bad_strings(bad: str) -> None:
    with pytest.raises(ValueError):
        yuan_to_fen(bad)


def test_fen_to_yuan_rejects_negative_and_non_int() -> None:
    with pytest.raises(ValueError):
        fen_to_yuan(-1)
    with pytest.raises(TypeError):
        fen_to_yuan(True)
    with pytest.raises(TypeError):
        fen_to_yuan(1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("account", "identity_type"),
    [
        ("2088123412341234", IDENTITY_USER_ID),
        ("2088123412341", IDENTITY_LOGON_ID),  # too short for a user id
        ("1088123412341234", IDENTITY_LOGON_ID),
        ("payee@example.com", IDENTITY_LOGON_ID),
        ("13800138000", IDENTITY_LOGON_ID),
    ],
)
def test_identity_type(account: str, identity_type: str) -> None:
    assert identity_type_for_account(account) == identity_type


def _order(**kw: object) -> TransferOrder:
    values: dict[str, object] = {
        "reference": "T20240101000001",
        "amount": 1234,
        "currency": "CNY",
        "payee_type": PayeeType.ALIPAY_ACCOUNT,
        "payee_account": "2088123412341234",
        "description": "payout",
    }
    values.update(kw)
    return TransferOrder(**values)  # type: ignore[arg-type]


def test_transfer_biz_content_for_alipay_account() -> None:
    biz = transfer_biz_content(_order(payee_name="张三"))
    assert biz == {
        "out_biz_no": "T20240101000001",
        "trans_amount": "12.34",
        "product_code": "TRANS_ACCOUNT_NO_PWD",
        "biz_scene": "DIRECT_TRANSFER",
        "order_title": "payout",
        "payee_info": {
            "identity": "2088123412341234",
            "identity_type": "ALIPAY_USER_ID",
            "name": "张三",
        },
    }


def test_transfer_biz_content_for_bank_card_requires_name() -> None:
    order = _order(payee_type=PayeeType.BANK_CARD, payee_account="6222020000000001")
    with pytest.raises(OrderNotMappable):
        transfer_biz_content(order)
    biz = transfer_biz_content(
        _order(payee_type=PayeeType.BANK_CARD, payee_account="6222020000000001", payee_name="李四")
    )
    assert biz["product_code"] == "TRANS_BANKCARD_NO_PWD"
    assert biz["payee_info"]["identity_type"] == IDENTITY_BANKCARD
    assert biz["payee_info"]["name"] == "李四"


@pytest.mark.parametrize(
    "order",
    [
        _order(currency="USD"),
        _order(amount=0),
        _order(payee_type=PayeeType.WECHAT_OPENID, payee_account="o-openid"),
    ],
)
def test_unmappable_orders(order: TransferOrder) -> None:
    with pytest.raises(OrderNotMappable):
        transfer_biz_content(order)


def test_query_biz_content() -> None:
    assert query_biz_content(_order()) == {
        "out_biz_no": "T20240101000001",
        "product_code": "TRANS_ACCOUNT_NO_PWD",
        "biz_scene": "DIRECT_TRANSFER",
    }


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("SUCCESS", Outcome.SUCCEEDED),
        ("FAIL", Outcome.FAILED),
        ("DEALING", Outcome.PROCESSING),
        ("REFUND", Outcome.RETURNED),
    ],
)
def test_status_words(status: str, outcome: Outcome) -> None:
    assert outcome_for_status(status) is outcome
    result = map_transfer_response(
        {"code": "10000", "msg": "Success", "status": status, "order_id": "O1", "out_biz_no": "T1"}
    )
    assert result.outcome is outcome
    assert result.channel_order_id == "O1"
    assert result.raw_status == status


def test_unknown_status_word_is_processing() -> None:
    assert outcome_for_status("WEIRD") is None
    assert map_transfer_response({"code": "10000", "status": "WEIRD"}).outcome is Outcome.PROCESSING
    assert map_transfer_response({"code": "10000"}).outcome is Outcome.PROCESSING


@pytest.mark.parametrize(
    "sub_code",
    [
        "PAYEE_NOT_EXIST",
        "PAYEE_USER_INFO_ERROR",
        "PAYEE_ACCOUNT_STATUS_ERROR",
        "PAYER_BALANCE_NOT_ENOUGH",
        "PAYEE_CARD_INFO_ERROR",
        "EXCEED_LIMIT_SM_AMOUNT",
        "INVALID_PARAMETER",
    ],
)
def test_business_failures_that_moved_no_money(sub_code: str) -> None:
    result = map_transfer_response(
        {"code": "40004", "msg": "Business Failed", "sub_code": sub_code, "sub_msg": "说明"}
    )
    assert result.outcome is Outcome.FAILED
    assert result.failure_code == sub_code
    assert result.failure_message == "说明"


@pytest.mark.parametrize(
    "sub_code", ["SYSTEM_ERROR", "PAYMENT_INFO_INCONSISTENCY", "SOMETHING_NEW", None]
)
def test_business_answers_that_are_not_definitive(sub_code: str | None) -> None:
    node = {"code": "40004", "msg": "Business Failed"}
    if sub_code:
        node["sub_code"] = sub_code
    assert map_transfer_response(node).outcome is Outcome.PROCESSING


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        ("20000", Outcome.PROCESSING),
        ("40002", Outcome.FAILED),
        ("40006", Outcome.FAILED),
        ("40005", Outcome.PROCESSING),
        ("99999", Outcome.PROCESSING),
    ],
)
def test_code_classes(code: str, outcome: Outcome) -> None:
    result = map_transfer_response({"code": code, "msg": "x", "sub_code": "isv.something"})
    assert result.outcome is outcome
    if outcome is Outcome.FAILED:
        assert result.failure_code == "isv.something"


def test_query_mapping() -> None:
    not_found = map_query_response(
        {"code": "40004", "sub_code": "ORDER_NOT_EXIST", "sub_msg": "转账订单不存在"}
    )
    assert not_found.outcome is Outcome.NOT_FOUND
    # A failed query never fails the transfer.
    for node in (
        {"code": "40004", "sub_code": "INVALID_PARAMETER"},
        {"code": "40002", "sub_code": "isv.invalid-signature"},
        {"code": "20000"},
    ):
        assert map_query_response(node).outcome is Outcome.PROCESSING
    failed = map_query_response(
        {
            "code": "10000",
            "status": "FAIL",
            "order_id": "O1",
            "error_code": "PAYEE_CARD_INFO_ERROR",
            "fail_reason": "收款方卡信息错误",
        }
    )
    assert failed.outcome is Outcome.FAILED
    assert failed.failure_code == "PAYEE_CARD_INFO_ERROR"
    assert failed.failure_message == "收款方卡信息错误"


def test_retry_later_detection() -> None:
    assert is_retry_later({"code": "40005", "sub_code": "isv.app-call-limited"})
    assert is_retry_later({"code": "40004", "sub_code": "isv.method-call-limited"})
    assert not is_retry_later({"code": "40004", "sub_code": "PAYEE_NOT_EXIST"})
    assert not is_retry_later({"code": "20000"})


def test_response_node_name() -> None:
    assert response_node_name("alipay.fund.trans.uni.transfer") == (
        "alipay_fund_trans_uni_transfer_response"
    )
