"""Pure mapping between Paymux transfers and Alipay's fund-transfer fields (no I/O).

Sources for the codes below: the error tables of ``alipay.fund.trans.uni.transfer`` and
``alipay.fund.trans.common.query`` and the gateway's public error codes (40001 missing
arguments, 40002 invalid arguments, 40004 business failure, 40005 call limited, 40006
insufficient permissions, 20000 service unavailable).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from paymux.channels.base import ChannelResult, TransferOrder
from paymux.domain.outcomes import Outcome
from paymux.domain.payees import PayeeType

METHOD_TRANSFER: Final = "alipay.fund.trans.uni.transfer"
METHOD_QUERY: Final = "alipay.fund.trans.common.query"
MSG_METHOD_ORDER_CHANGED: Final = "alipay.fund.trans.order.changed"

PRODUCT_ACCOUNT: Final = "TRANS_ACCOUNT_NO_PWD"
PRODUCT_BANKCARD: Final = "TRANS_BANKCARD_NO_PWD"
BIZ_SCENE: Final = "DIRECT_TRANSFER"

IDENTITY_USER_ID: Final = "ALIPAY_USER_ID"
IDENTITY_LOGON_ID: Final = "ALIPAY_LOGON_ID"
IDENTITY_BANKCARD: Final = "BANKCARD_ACCOUNT"

CODE_SUCCESS: Final = "10000"
CODE_UNAVAILABLE: Final = "20000"
CODE_MISSING_ARGUMENTS: Final = "40001"
CODE_INVALID_ARGUMENTS: Final = "40002"
CODE_BUSINESS_FAILED: Final = "40004"
CODE_CALL_LIMITED: Final = "40005"
CODE_INSUFFICIENT_PERMISSIONS: Final = "40006"

DEFAULT_ORDER_TITLE: Final = "转账"

STATUS_OUTCOMES: Final[Mapping[str, Outcome]] = {
    "SUCCESS": Outcome.SUCCEEDED,
    "FAIL": Outcome.FAILED,
    "DEALING": Outcome.PROCESSING,
    "REFUND": Outcome.RETURNED,
}

# 40004 sub_codes the docs describe as a refusal before any money moved (bad payee, payer
# cannot pay, limits, bad parameters). Anything not listed is treated as unknown.
NO_MONEY_MOVED_SUB_CODES: Final = frozenset(
    {
        "INVALID_PARAMETER",
        "PAYEE_NOT_EXIST",
        "PAYEE_ACCOUNT_NOT_EXSIT",
        "PAYEE_USER_INFO_ERROR",
        "PAYEE_USERINFO_STATUS_ERROR",
        "PAYEE_ACCOUNT_STATUS_ERROR",
        "PAYEE_ACC_OCUPIED",
        "PAYEE_CERT_INFO_ERROR",
        "PAYEE_NOT_RELNAME_CERTIFY",
        "PAYEE_USER_TYPE_ERROR",
        "PAYEE_CARD_INFO_ERROR",
        "PAYEE_TRUSTEESHIP_ACC_OVER_LIMIT",
        "CARD_BIN_ERROR",
        "INVALID_CARDNO",
        "PAYER_BALANCE_NOT_ENOUGH",
        "BALANCE_IS_NOT_ENOUGH",
        "PAYER_STATUS_ERROR",
        "PAYER_CERTIFY_CHECK_FAIL",
        "PAYER_USER_INFO_ERROR",
        "PAYER_NOT_EXIST",
        "PAYER_PAYEE_CANNOT_SAME",
        "PAYER_PERMLIMIT_CHECK_FAILURE",
        "PAYER_DATA_INCOMPLETE",
        "PAYCARD_UNABLE_PAYMENT",
        "EXCEED_LIMIT_SM_AMOUNT",
        "EXCEED_LIMIT_SM_MIN_AMOUNT",
        "EXCEED_LIMIT_MM_AMOUNT",
        "EXCEED_LIMIT_DM_AMOUNT",
        "EXCEED_LIMIT_DM_MAX_AMOUNT",
        "EXCEED_LIMIT_PERSONAL_SM_AMOUNT",
        "EXCEED_LIMIT_ENT_SM_AMOUNT",
        "EXCEED_LIMIT_UNRN_DM_AMOUNT",
        "EXCEED_LIMIT_DC_RECEIVED",
        "MEMO_REQUIRED_IN_TRANSFER_ERROR",
        "REMARK_HAS_SENSITIVE_WORD",
        "NO_ACCOUNT_RECEIVE_PERMISSION",
        "NO_ACCOUNT_PAYMENT_PERMISSION",
        "PRODUCT_NOT_SIGN",
        "PERMIT_CHECK_PERM_IDENTITY_THEFT",
        "PERMIT_CHECK_PERM_LIMITED",
        "PERMIT_NON_BANK_LIMIT_PAYEE",
        "PERM_AML_NOT_REALNAME_REV",
        "BLOCK_USER_FORBBIDEN_RECIEVE",
        "RELEASE_USER_FORBBIDEN_RECIEVE",
    }
)

# Explicitly unknown: system busy, or "same out_biz_no, different parameters" (the first
# request under that out_biz_no may well have moved money).
UNKNOWN_SUB_CODES: Final = frozenset(
    {"SYSTEM_ERROR", "PAYMENT_INFO_INCONSISTENCY", "REQUEST_PROCESSING", "PAYMENT_FAIL"}
)

# Refused before acceptance; safe to resend under the same out_biz_no.
RETRY_LATER_SUB_CODES: Final = frozenset(
    {"isv.app-call-limited", "isv.method-call-limited", "RESOURCE_LIMIT_EXCEED"}
)

QUERY_NOT_FOUND_SUB_CODE: Final = "ORDER_NOT_EXIST"

_YUAN = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]{1,2})?", re.ASCII)
_USER_ID = re.compile(r"2088[0-9]{12}", re.ASCII)


class OrderNotMappable(ValueError):
    """A TransferOrder Alipay cannot be asked to pay (nothing is sent)."""


def fen_to_yuan(fen: int) -> str:
    """Integer fen to Alipay's yuan string with exactly two decimals: 1234 -> "12.34"."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError("amount must be an int number of fen")
    if fen < 0:
        raise ValueError("amount must not be negative")
    return f"{fen // 100}.{fen % 100:02d}"


def yuan_to_fen(text: str) -> int:
    """Strictly parse a yuan string ("12.34", "12.3", "12") into fen.

    Rejects more than two decimals, signs, exponents, whitespace and anything that is not
    a plain decimal number: an amount we cannot read exactly is an error, never rounded.
    """
    if not isinstance(text, str) or _YUAN.fullmatch(text) is None:
        raise ValueError(f"not a yuan amount: {text!r}")
    try:
        fen = Decimal(text) * 100
    except InvalidOperation as exc:  # pragma: no cover - the pattern already excludes it
        raise ValueError(f"not a yuan amount: {text!r}") from exc
    return int(fen.to_integral_exact())


def identity_type_for_account(account: str) -> str:
    """ALIPAY_USER_ID for a 2088-prefixed 16-digit user id, otherwise a logon id."""
    if "@" not in account and _USER_ID.fullmatch(account) is not None:
        return IDENTITY_USER_ID
    return IDENTITY_LOGON_ID


def product_code_for(payee_type: PayeeType) -> str:
    if payee_type is PayeeType.ALIPAY_ACCOUNT:
        return PRODUCT_ACCOUNT
    if payee_type is PayeeType.BANK_CARD:
        return PRODUCT_BANKCARD
    raise OrderNotMappable(f"Alipay cannot pay payee type {payee_type.value}")


def transfer_biz_content(order: TransferOrder) -> dict[str, Any]:
    """The ``biz_content`` of ``alipay.fund.trans.uni.transfer`` for one order."""
    if order.currency != "CNY":
        raise OrderNotMappable("Alipay transfers are in CNY only")
    if order.amount <= 0:
        raise OrderNotMappable("amount must be positive")
    if not order.reference or not order.payee_account:
        raise OrderNotMappable("reference and payee account are required")
    product_code = product_code_for(order.payee_type)
    payee: dict[str, Any] = {"identity": order.payee_account}
    if product_code == PRODUCT_BANKCARD:
        if not order.payee_name:
            raise OrderNotMappable("a bank card transfer needs the payee name")
        payee["identity_type"] = IDENTITY_BANKCARD
        payee["name"] = order.payee_name
        payee["bankcard_ext_info"] = {"account_type": "2"}  # 2 = personal card
    else:
        payee["identity_type"] = identity_type_for_account(order.payee_account)
        if order.payee_name:
            payee["name"] = order.payee_name
    return {
        "out_biz_no": order.reference,
        "trans_amount": fen_to_yuan(order.amount),
        "product_code": product_code,
        "biz_scene": BIZ_SCENE,
        "order_title": order.description or DEFAULT_ORDER_TITLE,
        "payee_info": payee,
    }


def query_biz_content(order: TransferOrder) -> dict[str, Any]:
    """The ``biz_content`` of ``alipay.fund.trans.common.query`` by our out_biz_no."""
    return {
        "out_biz_no": order.reference,
        "product_code": product_code_for(order.payee_type),
        "biz_scene": BIZ_SCENE,
    }


def outcome_for_status(status: str | None) -> Outcome | None:
    """Alipay's order status word in Paymux's taxonomy; None for an unknown word."""
    if status is None:
        return None
    return STATUS_OUTCOMES.get(status)


def is_retry_later(node: Mapping[str, Any]) -> bool:
    """An explicit "refused, try again later" answer: nothing was accepted."""
    return node.get("code") == CODE_CALL_LIMITED or node.get("sub_code") in RETRY_LATER_SUB_CODES


def _text(node: Mapping[str, Any], key: str) -> str | None:
    value = node.get(key)
    return value if isinstance(value, str) and value else None


def _status_result(node: Mapping[str, Any]) -> ChannelResult:
    status = _text(node, "status")
    outcome = outcome_for_status(status) or Outcome.PROCESSING
    failure_code = failure_message = None
    if outcome in (Outcome.FAILED, Outcome.RETURNED):
        failure_code = _text(node, "error_code")
        failure_message = _text(node, "fail_reason")
    return ChannelResult(
        outcome=outcome,
        channel_order_id=_text(node, "order_id"),
        failure_code=failure_code,
        failure_message=failure_message,
        raw_status=status,
        raw=dict(node),
    )


def map_transfer_response(node: Mapping[str, Any]) -> ChannelResult:
    """A verified ``alipay_fund_trans_uni_transfer_response`` node as a ChannelResult."""
    code = node.get("code")
    if code == CODE_SUCCESS:
        return _status_result(node)
    sub_code = _text(node, "sub_code")
    definitive = code in (
        CODE_MISSING_ARGUMENTS,
        CODE_INVALID_ARGUMENTS,
        CODE_INSUFFICIENT_PERMISSIONS,
    ) or (code == CODE_BUSINESS_FAILED and sub_code in NO_MONEY_MOVED_SUB_CODES)
    if definitive:
        return ChannelResult(
            outcome=Outcome.FAILED,
            channel_order_id=_text(node, "order_id"),
            failure_code=sub_code or (str(code) if code is not None else None),
            failure_message=_text(node, "sub_msg") or _text(node, "msg"),
            raw=dict(node),
        )
    # 20000, 40005 after retries, UNKNOWN_SUB_CODES, any sub_code we do not know, any
    # code we do not know: the outcome was not seen.
    return ChannelResult(
        outcome=Outcome.PROCESSING, channel_order_id=_text(node, "order_id"), raw=dict(node)
    )


def map_query_response(node: Mapping[str, Any]) -> ChannelResult:
    """A verified ``alipay_fund_trans_common_query_response`` node as a ChannelResult.

    A failed *query* says nothing about the transfer, so every error but "order not
    exist" is PROCESSING.
    """
    code = node.get("code")
    if code == CODE_SUCCESS:
        return _status_result(node)
    if code == CODE_BUSINESS_FAILED and node.get("sub_code") == QUERY_NOT_FOUND_SUB_CODE:
        return ChannelResult(outcome=Outcome.NOT_FOUND, raw=dict(node))
    return ChannelResult(outcome=Outcome.PROCESSING, raw=dict(node))


def response_node_name(method: str) -> str:
    """``alipay.fund.trans.uni.transfer`` -> ``alipay_fund_trans_uni_transfer_response``."""
    return method.replace(".", "_") + "_response"
