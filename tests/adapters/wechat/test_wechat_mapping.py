from __future__ import annotations

import pytest
from paymux_wechat import mapping
from paymux_wechat.mapping import ErrorDisposition

from paymux.channels.base import MalformedNotification, TransferOrder
from paymux.domain.outcomes import Outcome
from paymux.domain.payees import PayeeType


def _order(**overrides: object) -> TransferOrder:
    values: dict[str, object] = {
        "reference": "PMX0001",
        "amount": 1050,
        "currency": "CNY",
        "payee_type": PayeeType.WECHAT_OPENID,
        "payee_account": "o-MYE42l80oelYMDE34nYD456Xoy",
        "description": "新会员有礼",
        "notify_url": "https://gw.example/notify/wechat",
    }
    values.update(overrides)
    return TransferOrder(**values)  # type: ignore[arg-type]


def test_body_shape_for_scene_1000() -> None:
    body = mapping.build_transfer_body(_order(), appid="wx123")
    assert body == {
        "appid": "wx123",
        "out_bill_no": "PMX0001",
        "transfer_scene_id": "1000",
        "openid": "o-MYE42l80oelYMDE34nYD456Xoy",
        "transfer_amount": 1050,
        "transfer_remark": "新会员有礼",
        "notify_url": "https://gw.example/notify/wechat",
        "transfer_scene_report_infos": [
            {"info_type": "活动名称", "info_content": "新会员有礼"},
            {"info_type": "奖励说明", "info_content": "新会员有礼"},
        ],
    }
    assert isinstance(body["transfer_amount"], int)


def test_body_optional_fields_and_defaults() -> None:
    body = mapping.build_transfer_body(
        _order(description=None, notify_url=None),
        appid="wx123",
        encrypted_user_name="CIPHERTEXT",
        user_recv_perception="现金奖励",
        default_notify_url="https://default/notify",
    )
    assert body["transfer_remark"] == mapping.DEFAULT_REMARK
    assert body["user_name"] == "CIPHERTEXT"
    assert body["user_recv_perception"] == "现金奖励"
    assert body["notify_url"] == "https://default/notify"


def test_remark_is_truncated_to_32_chars() -> None:
    body = mapping.build_transfer_body(_order(description="x" * 50), appid="wx")
    assert body["transfer_remark"] == "x" * 32
    assert all(len(i["info_content"]) <= 32 for i in body["transfer_scene_report_infos"])


def test_other_scene_report_infos() -> None:
    body = mapping.build_transfer_body(_order(), appid="wx", transfer_scene_id="1005")
    assert [i["info_type"] for i in body["transfer_scene_report_infos"]] == ["岗位类型", "报酬说明"]
    body = mapping.build_transfer_body(_order(), appid="wx", transfer_scene_id="9999")
    assert "transfer_scene_report_infos" not in body


@pytest.mark.parametrize(
    "overrides",
    [
        {"payee_type": PayeeType.ALIPAY_ACCOUNT},
        {"currency": "USD"},
        {"amount": 0},
        {"amount": True},
    ],
)
def test_body_refuses_what_wechat_cannot_pay(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        mapping.build_transfer_body(_order(**overrides), appid="wx")


def test_user_name_only_from_30_fen() -> None:
    assert mapping.wants_user_name(_order(payee_name="张三", amount=30))
    assert not mapping.wants_user_name(_order(payee_name="张三", amount=29))
    assert not mapping.wants_user_name(_order(payee_name=None, amount=5000))


@pytest.mark.parametrize(
    ("state", "outcome"),
    [
        ("SUCCESS", Outcome.SUCCEEDED),
        ("FAIL", Outcome.FAILED),
        ("CANCELLED", Outcome.CANCELED),
        ("ACCEPTED", Outcome.PROCESSING),
        ("PROCESSING", Outcome.PROCESSING),
        ("WAIT_USER_CONFIRM", Outcome.REQUIRES_CONFIRMATION),
        ("TRANSFERING", Outcome.PROCESSING),
        ("CANCELING", Outcome.CANCELED),  # the cancel was accepted
        ("SOMETHING_NEW", Outcome.PROCESSING),
    ],
)
def test_every_state_maps(state: str, outcome: Outcome) -> None:
    result = mapping.result_from_bill(
        {"out_bill_no": "PMX0001", "transfer_bill_no": "1330", "state": state}
    )
    assert result.outcome is outcome
    assert result.raw_status == state
    assert result.channel_order_id == "1330"


def test_fail_reason_becomes_failure_code() -> None:
    result = mapping.result_from_bill({"state": "FAIL", "fail_reason": "PAYEE_ACCOUNT_ABNORMAL"})
    assert result.outcome is Outcome.FAILED
    assert result.failure_code == "PAYEE_ACCOUNT_ABNORMAL"
    success = mapping.result_from_bill({"state": "SUCCESS", "fail_reason": "IGNORED"})
    assert success.failure_code is None


@pytest.mark.parametrize(
    ("status", "code", "message", "disposition"),
    [
        (400, "PARAM_ERROR", "transfer_amount 必须是正整数", ErrorDisposition.FAILED),
        (400, "INVALID_REQUEST", "APPID不存在", ErrorDisposition.FAILED),
        (403, "NOT_ENOUGH", "资金不足", ErrorDisposition.FAILED),
        (403, "NO_AUTH", "商户无权限", ErrorDisposition.FAILED),
        (401, "SIGN_ERROR", "验签失败", ErrorDisposition.FAILED),
        (429, "FREQUENCY_LIMITED", "频率超限", ErrorDisposition.RETRY),
        (500, "SYSTEM_ERROR", "系统错误", ErrorDisposition.PROCESSING),
        (502, None, None, ErrorDisposition.PROCESSING),
        (503, "WHATEVER", "x", ErrorDisposition.PROCESSING),
        (418, "TEAPOT", "unknown", ErrorDisposition.PROCESSING),
        (
            400,
            "INVALID_REQUEST",
            "商户单号(out_bill_no)重复，且与原转账单的请求参数不一致",
            ErrorDisposition.PROCESSING,
        ),
        (400, "PARAM_ERROR", "out_bill_no 已存在", ErrorDisposition.PROCESSING),
        (400, "ALREADY_EXISTS", None, ErrorDisposition.PROCESSING),
    ],
)
def test_send_errors_are_classified(
    status: int, code: str | None, message: str | None, disposition: ErrorDisposition
) -> None:
    assert mapping.classify_send_error(status, code, message) is disposition


def test_query_errors_never_fail_a_transfer() -> None:
    assert mapping.classify_query_error(404, "NOT_FOUND") is ErrorDisposition.NOT_FOUND
    assert mapping.classify_query_error(400, "PARAM_ERROR") is ErrorDisposition.PROCESSING
    assert mapping.classify_query_error(500, "SYSTEM_ERROR") is ErrorDisposition.PROCESSING
    assert mapping.classify_query_error(429, "FREQUENCY_LIMITED") is ErrorDisposition.RETRY


def test_result_from_error_outcomes() -> None:
    failed = mapping.result_from_error(
        ErrorDisposition.FAILED, status=403, code="NOT_ENOUGH", message="资金不足"
    )
    assert failed.outcome is Outcome.FAILED
    assert failed.failure_code == "NOT_ENOUGH"
    missing = mapping.result_from_error(
        ErrorDisposition.NOT_FOUND, status=404, code="NOT_FOUND", message=None
    )
    assert missing.outcome is Outcome.NOT_FOUND
    unknown = mapping.result_from_error(
        ErrorDisposition.RETRY, status=429, code="FREQUENCY_LIMITED", message=None
    )
    assert unknown.outcome is Outcome.PROCESSING


def test_error_fields_tolerate_odd_bodies() -> None:
    assert mapping.error_fields({"code": "X", "message": "m"}) == ("X", "m")
    assert mapping.error_fields(None) == (None, None)
    assert mapping.error_fields(["code"]) == (None, None)


def test_notification_from_resource() -> None:
    event = {"id": "EV-1", "event_type": mapping.EVENT_BILL_FINISHED}
    resource = {
        "out_bill_no": "PMX0001",
        "transfer_bill_no": "1330000071100999991182020050700019480001",
        "state": "FAIL",
        "mch_id": "1900000109",
        "transfer_amount": 1050,
        "openid": "o-abc",
        "fail_reason": "PAYEE_ACCOUNT_ABNORMAL",
    }
    note = mapping.notification_from_resource(event, resource)
    assert note.reference == "PMX0001"
    assert note.outcome is Outcome.FAILED
    assert note.amount == 1050
    assert note.currency == "CNY"
    assert note.channel_account == "1900000109"
    assert note.notification_id == "EV-1"
    assert note.failure_code == "PAYEE_ACCOUNT_ABNORMAL"
    assert note.channel_order_id == "1330000071100999991182020050700019480001"


@pytest.mark.parametrize(
    "resource",
    [
        {"state": "SUCCESS"},
        {"out_bill_no": "PMX0001"},
        {"out_bill_no": "PMX0001", "state": "SUCCESS", "transfer_amount": "10.50"},
    ],
)
def test_malformed_resources(resource: dict[str, object]) -> None:
    with pytest.raises(MalformedNotification):
        mapping.notification_from_resource({"id": "x"}, resource)


def test_wait_user_confirm_becomes_next_action() -> None:
    result = mapping.result_from_bill(
        {
            "out_bill_no": "PMX0001",
            "transfer_bill_no": "1330",
            "state": "WAIT_USER_CONFIRM",
            "create_time": "2025-01-01T08:00:00+08:00",
            "package_info": "ABBQO+oYAAABAAAAAAB",
        },
        mchid="1900000001",
        appid="wx0001",
        confirmation_expiry_seconds=3600,
    )
    assert result.outcome is Outcome.REQUIRES_CONFIRMATION
    assert result.next_action == {
        "type": "wechat_user_confirmation",
        "wechat": {
            "mch_id": "1900000001",
            "app_id": "wx0001",
            "package_info": "ABBQO+oYAAABAAAAAAB",
        },
        "expires_at": "2025-01-01T01:00:00Z",
    }


def test_cancel_path() -> None:
    assert (
        mapping.cancel_path("PMX0001")
        == "/v3/fund-app/mch-transfer/transfer-bills/out-bill-no/PMX0001/cancel"
    )
