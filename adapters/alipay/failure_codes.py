"""Alipay failure codes -> Paymux failure codes (:mod:`paymux.domain.failures`), as data.

Keys are what :mod:`.mapping` reports as a failed transfer's ``failure_code``: the
``sub_code`` of a refused ``alipay.fund.trans.uni.transfer`` (code 40004, or the ``isv.*``
sub_code of 40001 / 40002 / 40006), and the ``error_code`` of a FAIL status returned by
``alipay.fund.trans.common.query`` or the ``alipay.fund.trans.order.changed`` notification,
which uses the same words. Sources: the error-code tables of both APIs on
opendocs.alipay.com. docs/FAILURE_CODES.md is generated from this table (see its test).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

FAILURE_CODES: Final[Mapping[str, str]] = {
    # --- payee ---------------------------------------------------------------------------
    "PAYEE_NOT_EXIST": "payee_not_found",
    "PAYEE_ACCOUNT_NOT_EXSIT": "payee_not_found",  # sic: Alipay's spelling
    "PAYEE_USER_INFO_ERROR": "payee_name_mismatch",
    "PAYEE_CERT_INFO_ERROR": "payee_name_mismatch",
    "PAYEE_CARD_INFO_ERROR": "payee_name_mismatch",
    "CARD_BIN_ERROR": "payee_not_found",
    "INVALID_CARDNO": "payee_not_found",
    "PAYEE_USERINFO_STATUS_ERROR": "payee_account_restricted",
    "PAYEE_ACCOUNT_STATUS_ERROR": "payee_account_restricted",
    "PAYEE_ACC_OCUPIED": "payee_account_restricted",
    "PAYEE_NOT_RELNAME_CERTIFY": "payee_account_restricted",
    "PAYEE_USER_TYPE_ERROR": "payee_account_restricted",
    "NO_ACCOUNT_RECEIVE_PERMISSION": "payee_account_restricted",
    "PERMIT_CHECK_PERM_IDENTITY_THEFT": "payee_account_restricted",
    "PERMIT_NON_BANK_LIMIT_PAYEE": "payee_account_restricted",
    "PERM_AML_NOT_REALNAME_REV": "payee_account_restricted",
    "BLOCK_USER_FORBBIDEN_RECIEVE": "payee_account_restricted",
    "RELEASE_USER_FORBBIDEN_RECIEVE": "payee_account_restricted",
    "PAYEE_TRUSTEESHIP_ACC_OVER_LIMIT": "payee_limit_exceeded",
    "EXCEED_LIMIT_DC_RECEIVED": "payee_limit_exceeded",
    "EXCEED_LIMIT_UNRN_DM_AMOUNT": "payee_limit_exceeded",
    # --- payer (Paymux's account at Alipay) ---------------------------------------------
    "PAYER_BALANCE_NOT_ENOUGH": "channel_insufficient_funds",
    "BALANCE_IS_NOT_ENOUGH": "channel_insufficient_funds",
    "PAYER_STATUS_ERROR": "channel_error",
    "PAYER_CERTIFY_CHECK_FAIL": "channel_error",
    "PAYER_USER_INFO_ERROR": "channel_error",
    "PAYER_NOT_EXIST": "channel_error",
    "PAYER_PERMLIMIT_CHECK_FAILURE": "channel_error",
    "PAYER_DATA_INCOMPLETE": "channel_error",
    "PAYCARD_UNABLE_PAYMENT": "channel_error",
    "NO_ACCOUNT_PAYMENT_PERMISSION": "channel_error",
    "PRODUCT_NOT_SIGN": "channel_error",
    "PERMIT_CHECK_PERM_LIMITED": "channel_rejected",
    "PAYER_PAYEE_CANNOT_SAME": "invalid_request",
    # --- amounts and limits --------------------------------------------------------------
    "EXCEED_LIMIT_SM_AMOUNT": "amount_out_of_range",
    "EXCEED_LIMIT_SM_MIN_AMOUNT": "amount_out_of_range",
    "EXCEED_LIMIT_ENT_SM_AMOUNT": "amount_out_of_range",
    "EXCEED_LIMIT_PERSONAL_SM_AMOUNT": "payee_limit_exceeded",
    "EXCEED_LIMIT_MM_AMOUNT": "channel_rejected",  # our monthly quota at Alipay
    "EXCEED_LIMIT_DM_AMOUNT": "channel_rejected",  # our daily quota at Alipay
    "EXCEED_LIMIT_DM_MAX_AMOUNT": "channel_rejected",
    # --- request -------------------------------------------------------------------------
    "INVALID_PARAMETER": "invalid_request",
    "MEMO_REQUIRED_IN_TRANSFER_ERROR": "invalid_request",
    "REMARK_HAS_SENSITIVE_WORD": "invalid_request",
    # Gateway-level refusals (40001 / 40002 / 40006): our request or configuration.
    "isv.missing-app-id": "channel_error",
    "isv.missing-method": "channel_error",
    "isv.missing-signature": "channel_error",
    "isv.missing-timestamp": "channel_error",
    "isv.invalid-app-id": "channel_error",
    "isv.invalid-format": "channel_error",
    "isv.invalid-method": "channel_error",
    "isv.invalid-parameter": "invalid_request",
    "isv.invalid-signature": "channel_error",
    "isv.invalid-signature-type": "channel_error",
    "isv.insufficient-isv-permissions": "channel_error",
    "isv.insufficient-user-permissions": "channel_error",
    "40001": "channel_error",
    "40002": "invalid_request",
    "40006": "channel_error",
    # Paymux's own refusal before sending: the order cannot be expressed for Alipay.
    "UNSUPPORTED_ORDER": "invalid_request",
}
