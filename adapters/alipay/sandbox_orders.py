"""Orders held by the Alipay sandbox and the response / notification fields built from them."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from .mapping import (
    BIZ_SCENE,
    CODE_SUCCESS,
    IDENTITY_BANKCARD,
    IDENTITY_LOGON_ID,
    IDENTITY_USER_ID,
    METHOD_TRANSFER,
    MSG_METHOD_ORDER_CHANGED,
    PRODUCT_ACCOUNT,
    PRODUCT_BANKCARD,
    yuan_to_fen,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")

TERMINAL_STATUSES: Final = frozenset({"SUCCESS", "FAIL", "REFUND"})
REFUND_ERROR_CODE: Final = "BANK_REFUND"  # sandbox's own reason word for a bounced card
REFUND_REASON: Final = "收款银行退票"


def shanghai_now() -> str:
    return datetime.now(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(slots=True)
class SandboxOrder:
    out_biz_no: str
    order_id: str
    pay_fund_order_id: str
    biz: dict[str, Any]  # the biz_content as received, for the dedupe comparison
    trans_amount: str
    product_code: str
    identity: str
    notify_url: str | None
    created_at: str
    status: str = "DEALING"
    pay_date: str | None = None
    error_code: str | None = None
    fail_reason: str | None = None
    notifications_sent: int = 0
    notification_acked: bool = False
    # The message of the latest terminal state (unsigned; signed at each delivery) and a
    # generation counter so a superseded resend loop stops.
    message: dict[str, str] | None = None
    generation: int = 0
    history: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "out_biz_no": self.out_biz_no,
            "order_id": self.order_id,
            "status": self.status,
            "trans_amount": self.trans_amount,
            "product_code": self.product_code,
            "notify_url": self.notify_url,
            "notifications_sent": self.notifications_sent,
            "notification_acked": self.notification_acked,
        }


class IdSource:
    """Alipay-looking 32-digit ids, reproducible with a seed."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._seq = 0

    def _id(self, infix: str) -> str:
        self._seq += 1
        today = datetime.now(SHANGHAI).strftime("%Y%m%d")
        tail = f"{self._seq:06d}{self._rng.randrange(10**8):08d}"
        return f"{today}{infix}{tail}"[:32].ljust(32, "0")

    def order_id(self) -> str:
        return self._id("110070000006")

    def fund_order_id(self) -> str:
        return self._id("110070001506")

    def notify_id(self) -> str:
        return f"{self._rng.getrandbits(128):032x}"


def transfer_problem(biz: dict[str, Any]) -> str | None:
    """Why a uni.transfer biz_content is invalid (Alipay's INVALID_PARAMETER), or None."""
    out_biz_no = biz.get("out_biz_no")
    if not isinstance(out_biz_no, str) or not out_biz_no or len(out_biz_no) > 64:
        return "out_biz_no"
    amount = biz.get("trans_amount")
    try:
        if not isinstance(amount, str) or yuan_to_fen(amount) <= 0:
            return "trans_amount"
    except ValueError:
        return "trans_amount"
    product_code = biz.get("product_code")
    if product_code not in (PRODUCT_ACCOUNT, PRODUCT_BANKCARD):
        return "product_code"
    if biz.get("biz_scene", BIZ_SCENE) != BIZ_SCENE:
        return "biz_scene"
    payee = biz.get("payee_info")
    if not isinstance(payee, dict):
        return "payee_info"
    identity, identity_type = payee.get("identity"), payee.get("identity_type")
    if not isinstance(identity, str) or not identity:
        return "payee_info.identity"
    if product_code == PRODUCT_BANKCARD:
        if identity_type != IDENTITY_BANKCARD or not payee.get("name"):
            return "payee_info (a bank card needs BANKCARD_ACCOUNT and the name)"
    elif identity_type not in (IDENTITY_USER_ID, IDENTITY_LOGON_ID):
        return "payee_info.identity_type"
    return None


def transfer_node(order: SandboxOrder) -> dict[str, Any]:
    node: dict[str, Any] = {
        "code": CODE_SUCCESS,
        "msg": "Success",
        "out_biz_no": order.out_biz_no,
        "order_id": order.order_id,
        "status": order.status,
        "trans_date": order.created_at,
    }
    if order.status != "DEALING":
        node["pay_fund_order_id"] = order.pay_fund_order_id
    return node


def query_node(order: SandboxOrder) -> dict[str, Any]:
    node: dict[str, Any] = {
        "code": CODE_SUCCESS,
        "msg": "Success",
        "order_id": order.order_id,
        "pay_fund_order_id": order.pay_fund_order_id,
        "out_biz_no": order.out_biz_no,
        "trans_amount": order.trans_amount,
        "status": order.status,
        "order_fee": "0.00",
    }
    if order.pay_date:
        node["pay_date"] = order.pay_date
    if order.error_code:
        node["error_code"] = order.error_code
    if order.fail_reason:
        node["fail_reason"] = order.fail_reason
    return node


def notification_message(order: SandboxOrder, app_id: str, notify_id: str) -> dict[str, str]:
    """The unsigned form fields of ``alipay.fund.trans.order.changed`` for the order now."""
    biz: dict[str, Any] = {
        "out_biz_no": order.out_biz_no,
        "order_id": order.order_id,
        "pay_fund_order_id": order.pay_fund_order_id,
        "status": order.status,
        "trans_amount": order.trans_amount,
        "product_code": order.product_code,
        "biz_scene": BIZ_SCENE,
        "origin_interface": METHOD_TRANSFER,
        "action_type": "FINISH",
        "order_create_time": order.created_at,
    }
    if order.pay_date:
        biz["pay_date"] = order.pay_date
    if order.error_code:
        biz["error_code"] = order.error_code
    if order.fail_reason:
        biz["fail_reason"] = order.fail_reason
    return {
        "notify_id": notify_id,
        "msg_method": MSG_METHOD_ORDER_CHANGED,
        "app_id": app_id,
        "version": "1.1",
        "utc_timestamp": str(time.time_ns() // 1_000_000),
        "charset": "utf-8",
        "sign_type": "RSA2",
        "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":")),
    }
