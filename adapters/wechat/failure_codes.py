"""WeChat Pay failure codes -> Paymux failure codes (:mod:`paymux.domain.failures`), as data.

Keys are what :mod:`.mapping` reports as a failed bill's ``failure_code``: the bill's
``fail_reason`` (state FAIL, from the transfer answer, the query
``GET /v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}`` and the
``MCHTRANSFER.BILL.FINISHED`` callback), and the error ``code`` of a refused transfer request
(HTTP 4xx). Sources: the fail_reason enumeration of WeChat's 商家转账 documentation (as
also listed by the wechatpay-apiv3 SDKs' models) and the error-code table of 发起转账.
docs/FAILURE_CODES.md is generated from this table (see its test).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

FAILURE_CODES: Final[Mapping[str, str]] = {
    # --- fail_reason of a FAIL bill -------------------------------------------------------
    "ACCOUNT_FROZEN": "payee_account_restricted",
    "REAL_NAME_CHECK_FAIL": "payee_account_restricted",
    "NAME_NOT_CORRECT": "payee_name_mismatch",
    "OPENID_INVALID": "payee_not_found",
    "TRANSFER_QUOTA_EXCEED": "payee_limit_exceeded",
    "DAY_RECEIVED_QUOTA_EXCEED": "payee_limit_exceeded",
    "MONTH_RECEIVED_QUOTA_EXCEED": "payee_limit_exceeded",
    "DAY_RECEIVED_COUNT_EXCEED": "payee_limit_exceeded",
    "PRODUCT_AUTH_CHECK_FAIL": "channel_error",
    "OVERDUE_CLOSE": "confirmation_expired",
    "ID_CARD_NOT_CORRECT": "payee_name_mismatch",
    "ACCOUNT_NOT_EXIST": "payee_not_found",
    "TRANSFER_RISK": "channel_rejected",
    "REALNAME_ACCOUNT_RECEIVED_QUOTA_EXCEED": "payee_limit_exceeded",
    "RECEIVE_ACCOUNT_NOT_PERMMIT": "payee_account_restricted",  # sic: WeChat's spelling
    "PAYER_ACCOUNT_ABNORMAL": "channel_error",
    "PAYEE_ACCOUNT_ABNORMAL": "payee_account_restricted",
    "TRANSFER_REMARK_SET_FAIL": "invalid_request",
    # GUESS: listed for the upgraded API in community write-ups, not in the SDK models.
    "TRANSFER_SCENE_UNAVAILABLE": "channel_error",
    "TRANSFER_SCENE_INVALID": "invalid_request",
    "RECEIVE_ACCOUNT_NOT_CONFIGURE": "payee_account_restricted",
    "BLOCK_B2C_USERLIMITAMOUNT_BSRULE_MONTH": "payee_limit_exceeded",
    "BLOCK_B2C_USERLIMITAMOUNT_MONTH": "payee_limit_exceeded",
    "NON_REALNAME_USER": "payee_account_restricted",
    "OTHER_FAIL_REASON_TYPE": "channel_rejected",
    # GUESS: WeChat documents no fail_reason for a payee declining; the sandbox's reject
    # uses this word.
    "USER_REJECTED": "confirmation_rejected",
    # --- error code of a refused transfer request (no bill was made) ----------------------
    "PARAM_ERROR": "invalid_request",
    "INVALID_REQUEST": "invalid_request",
    "NOT_ENOUGH": "channel_insufficient_funds",
    "NO_AUTH": "channel_error",
    "SIGN_ERROR": "channel_error",
    # Paymux's own refusal before sending: the order cannot be expressed for WeChat.
    "UNSUPPORTED_ORDER": "invalid_request",
}
