"""The kinds of payee a transfer can pay; routing picks a channel that serves the kind."""

from __future__ import annotations

import enum


class PayeeType(enum.StrEnum):
    ALIPAY_ACCOUNT = "alipay_account"
    WECHAT_OPENID = "wechat_openid"
    BANK_CARD = "bank_card"
