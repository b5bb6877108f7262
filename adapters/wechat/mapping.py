"""Pure mapping between Paymux transfers and WeChat Pay transfer bills (商家转账).

No I/O and no cryptography here: the caller encrypts ``user_name`` and signs the bytes.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from paymux.channels.base import ChannelResult, MalformedNotification, Notification, TransferOrder
from paymux.domain.outcomes import Outcome
from paymux.domain.payees import PayeeType

TRANSFER_PATH = "/v3/fund-app/mch-transfer/transfer-bills"
QUERY_PATH_PREFIX = "/v3/fund-app/mch-transfer/transfer-bills/out-bill-no/"
EVENT_BILL_FINISHED = "MCHTRANSFER.BILL.FINISHED"
CURRENCY = "CNY"

DEFAULT_SCENE_ID = "1000"  # 现金营销
DEFAULT_REMARK = "转账"
MAX_REMARK_CHARS = 32
MAX_REPORT_CONTENT_CHARS = 32
# WeChat refuses user_name below 0.3 yuan and requires it from 2,000 yuan.
USER_NAME_MIN_FEN = 30
USER_NAME_REQUIRED_FEN = 200_000

# The report infos each scene requires (transfer_scene_report_infos[].info_type).
SCENE_REPORT_INFO_TYPES: Mapping[str, tuple[str, ...]] = {
    "1000": ("活动名称", "奖励说明"),  # 现金营销
    "1005": ("岗位类型", "报酬说明"),  # 佣金报酬
}

CONFIRMATION_TYPE = "wechat_user_confirmation"
# GUESS: WeChat closes a bill the payee has not confirmed after 24 hours.
DEFAULT_CONFIRMATION_EXPIRY_SECONDS = 24 * 3600

STATE_OUTCOMES: Mapping[str, Outcome] = {
    "SUCCESS": Outcome.SUCCEEDED,
    "FAIL": Outcome.FAILED,
    "CANCELLED": Outcome.CANCELED,
    # The cancel was accepted: the payee can no longer confirm and WeChat returns the
    # money to the merchant account (CANCELLED follows).
    "CANCELING": Outcome.CANCELED,
    "ACCEPTED": Outcome.PROCESSING,
    "PROCESSING": Outcome.PROCESSING,
    "WAIT_USER_CONFIRM": Outcome.REQUIRES_CONFIRMATION,
    "TRANSFERING": Outcome.PROCESSING,
}
TERMINAL_STATES = frozenset({"SUCCESS", "FAIL", "CANCELLED"})


def query_path(out_bill_no: str) -> str:
    return QUERY_PATH_PREFIX + out_bill_no


def cancel_path(out_bill_no: str) -> str:
    """撤销转账: ``POST …/transfer-bills/out-bill-no/{out_bill_no}/cancel`` (no body)."""
    return QUERY_PATH_PREFIX + out_bill_no + "/cancel"


# --- request ------------------------------------------------------------------------------


def transfer_remark(description: str | None) -> str:
    text = (description or "").strip() or DEFAULT_REMARK
    return text[:MAX_REMARK_CHARS]


def scene_report_infos(scene_id: str, remark: str) -> list[dict[str, str]]:
    """Report infos for the scene; the remark is the content for each required type."""
    content = remark[:MAX_REPORT_CONTENT_CHARS]
    return [
        {"info_type": info_type, "info_content": content}
        for info_type in SCENE_REPORT_INFO_TYPES.get(scene_id, ())
    ]


def wants_user_name(order: TransferOrder) -> bool:
    """Whether ``user_name`` may be sent (WeChat refuses it below 0.3 yuan)."""
    return bool(order.payee_name) and order.amount >= USER_NAME_MIN_FEN


def build_transfer_body(
    order: TransferOrder,
    *,
    appid: str,
    transfer_scene_id: str = DEFAULT_SCENE_ID,
    encrypted_user_name: str | None = None,
    user_recv_perception: str | None = None,
    default_notify_url: str | None = None,
) -> dict[str, Any]:
    """The JSON body of ``POST /v3/fund-app/mch-transfer/transfer-bills``.

    ``encrypted_user_name`` is the RSA-OAEP ciphertext of ``order.payee_name`` (the caller
    holds the platform key); pass it only when :func:`wants_user_name` is true.
    """
    if order.payee_type is not PayeeType.WECHAT_OPENID:
        raise ValueError("WeChat Pay only pays WeChat openids")
    if order.currency != CURRENCY:
        raise ValueError("WeChat Pay transfers are in CNY")
    if isinstance(order.amount, bool) or not isinstance(order.amount, int) or order.amount <= 0:
        raise ValueError("amount must be a positive integer number of fen")
    remark = transfer_remark(order.description)
    body: dict[str, Any] = {
        "appid": appid,
        "out_bill_no": order.reference,
        "transfer_scene_id": transfer_scene_id,
        "openid": order.payee_account,
    }
    if encrypted_user_name is not None:
        body["user_name"] = encrypted_user_name
    body["transfer_amount"] = order.amount
    body["transfer_remark"] = remark
    notify_url = order.notify_url or default_notify_url
    if notify_url:
        body["notify_url"] = notify_url
    if user_recv_perception:
        body["user_recv_perception"] = user_recv_perception
    infos = scene_report_infos(transfer_scene_id, remark)
    if infos:
        body["transfer_scene_report_infos"] = infos
    return body


# --- responses ----------------------------------------------------------------------------


def outcome_for_state(state: str | None) -> Outcome:
    """Unknown or missing states are PROCESSING: never guess a terminal outcome."""
    if state is None:
        return Outcome.PROCESSING
    return STATE_OUTCOMES.get(state, Outcome.PROCESSING)


def result_from_bill(
    body: Mapping[str, Any],
    *,
    mchid: str | None = None,
    appid: str | None = None,
    confirmation_expiry_seconds: float = DEFAULT_CONFIRMATION_EXPIRY_SECONDS,
) -> ChannelResult:
    """A 200 transfer, query or cancel body as a ChannelResult.

    WAIT_USER_CONFIRM with a ``package_info`` becomes a ``next_action`` the merchant's page
    passes to ``wx.requestMerchantTransfer`` (mchId, appId, package).
    """
    state = _str_or_none(body.get("state"))
    outcome = outcome_for_state(state)
    fail_reason = _str_or_none(body.get("fail_reason"))
    next_action: dict[str, Any] | None = None
    package_info = _str_or_none(body.get("package_info"))
    if outcome is Outcome.REQUIRES_CONFIRMATION and package_info and mchid and appid:
        next_action = {
            "type": CONFIRMATION_TYPE,
            "wechat": {"mch_id": mchid, "app_id": appid, "package_info": package_info},
            "expires_at": confirmation_deadline(
                _str_or_none(body.get("create_time")), confirmation_expiry_seconds
            ),
        }
    return ChannelResult(
        outcome=outcome,
        channel_order_id=_str_or_none(body.get("transfer_bill_no")),
        failure_code=fail_reason if outcome is Outcome.FAILED else None,
        failure_message=fail_reason if outcome is Outcome.FAILED else None,
        raw_status=state,
        raw=dict(body),
        next_action=next_action,
    )


def confirmation_deadline(create_time: str | None, expiry_seconds: float) -> str | None:
    """When an unconfirmed bill created at ``create_time`` closes, as UTC ISO 8601."""
    if create_time is None:
        return None
    try:
        created = datetime.fromisoformat(create_time)
    except ValueError:
        return None
    if created.tzinfo is None:
        return None
    deadline = created.astimezone(UTC) + timedelta(seconds=expiry_seconds)
    return deadline.isoformat().replace("+00:00", "Z")


class ErrorDisposition(enum.StrEnum):
    FAILED = "failed"  # refused before acceptance: no bill, no money moved
    RETRY = "retry"  # refused before acceptance, safe to resend under the same out_bill_no
    PROCESSING = "processing"  # outcome unknown
    NOT_FOUND = "not_found"


def is_duplicate_bill_conflict(code: str | None, message: str | None) -> bool:
    """WeChat's answer to a reused out_bill_no with different parameters.

    A bill under that number exists (it may even have paid), so this is never a failure.
    WeChat reports it as a 400 INVALID_REQUEST whose message names the repeated bill
    number; the exact wording is not specified, so match its stable parts.
    """
    if code in {"ALREADY_EXISTS", "OUT_BILL_NO_USED"}:
        return True
    if code not in {"INVALID_REQUEST", "PARAM_ERROR"} or not message:
        return False
    lowered = message.lower()
    names_bill = "单号" in message or "out_bill_no" in lowered
    return names_bill and any(word in message for word in ("重复", "不一致", "已存在"))


def classify_send_error(status: int, code: str | None, message: str | None) -> ErrorDisposition:
    """Disposition of a non-2xx answer to the transfer request."""
    if status == 429 or code == "FREQUENCY_LIMITED":
        return ErrorDisposition.RETRY
    if status >= 500:
        return ErrorDisposition.PROCESSING
    if is_duplicate_bill_conflict(code, message):
        return ErrorDisposition.PROCESSING
    if status == 400 and code in {"PARAM_ERROR", "INVALID_REQUEST"}:
        return ErrorDisposition.FAILED
    if status == 401 and code == "SIGN_ERROR":
        return ErrorDisposition.FAILED  # our signature was refused: no bill exists
    if status == 403 and code in {"NOT_ENOUGH", "NO_AUTH"}:
        return ErrorDisposition.FAILED
    return ErrorDisposition.PROCESSING  # an answer we do not understand is not a refusal


def classify_query_error(status: int, code: str | None) -> ErrorDisposition:
    """A failed query says nothing about the bill, except a 404 NOT_FOUND."""
    if status == 404 and code in {"NOT_FOUND", None}:
        return ErrorDisposition.NOT_FOUND
    if status == 429 or code == "FREQUENCY_LIMITED":
        return ErrorDisposition.RETRY
    return ErrorDisposition.PROCESSING


def result_from_error(
    disposition: ErrorDisposition,
    *,
    status: int,
    code: str | None,
    message: str | None,
    raw: Mapping[str, Any] | None = None,
) -> ChannelResult:
    """A classified error answer as a ChannelResult (RETRY that ran out is PROCESSING)."""
    outcome = {
        ErrorDisposition.FAILED: Outcome.FAILED,
        ErrorDisposition.NOT_FOUND: Outcome.NOT_FOUND,
    }.get(disposition, Outcome.PROCESSING)
    return ChannelResult(
        outcome=outcome,
        failure_code=code,
        failure_message=message,
        raw_status=f"HTTP {status}",
        raw=dict(raw or {}),
    )


def error_fields(body: object) -> tuple[str | None, str | None]:
    """``code`` and ``message`` of an error body (tolerates non-JSON / other shapes)."""
    if not isinstance(body, Mapping):
        return None, None
    return _str_or_none(body.get("code")), _str_or_none(body.get("message"))


# --- notifications ------------------------------------------------------------------------


def notification_from_resource(
    event: Mapping[str, Any], resource: Mapping[str, Any]
) -> Notification:
    """A verified, decrypted ``MCHTRANSFER.BILL.FINISHED`` callback as a Notification."""
    reference = _str_or_none(resource.get("out_bill_no"))
    state = _str_or_none(resource.get("state"))
    if not reference or not state:
        raise MalformedNotification("callback resource lacks out_bill_no or state")
    amount = resource.get("transfer_amount")
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int)):
        raise MalformedNotification("transfer_amount is not an integer number of fen")
    outcome = outcome_for_state(state)
    fail_reason = _str_or_none(resource.get("fail_reason"))
    return Notification(
        reference=reference,
        outcome=outcome,
        channel_order_id=_str_or_none(resource.get("transfer_bill_no")),
        amount=amount,
        currency=CURRENCY,
        channel_account=_str_or_none(resource.get("mch_id")),
        failure_code=fail_reason if outcome is Outcome.FAILED else None,
        failure_message=fail_reason if outcome is Outcome.FAILED else None,
        raw_status=state,
        notification_id=_str_or_none(event.get("id")),
        raw={**dict(event), "resource": dict(resource)},
    )


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
