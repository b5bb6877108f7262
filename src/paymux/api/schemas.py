"""Request bodies. Money fields are StrictInt minor units; unknown fields are refused.

Every field of a request uses the reusable types below, so each rule holds everywhere:

- text (``Annotated[str, text_limits(n), CLEAN_TEXT]``): NFC-normalised, then trimmed and
  length-checked; control characters (C0,
  DEL, C1, including NUL) and lone surrogates are refused (PostgreSQL cannot store a NUL,
  and a channel would receive whatever we accept).
- :data:`DateTime`: an RFC 3339 string with an offset (``2026-01-01T08:00:00+08:00`` or
  ``...Z``); a number is not a time and a naive time is ambiguous.
- Integers carry bounds that fit their database column (:data:`Amount`, :data:`Minor`).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from starlette.convertors import Convertor, register_url_convertor

from paymux.domain.money import MAX_AMOUNT

# C0, DEL, C1 controls and lone surrogates (not encodable as UTF-8).
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
NO_CONTROL_PATTERN = "^[^\\x00-\\x1f\\x7f-\\x9f]*$"
RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$"
)


def clean_text(value: Any) -> Any:
    """NFC, then refuse control characters; non-strings are left to the type check."""
    if not isinstance(value, str):
        return value
    value = unicodedata.normalize("NFC", value)
    if CONTROL_CHARACTERS.search(value):
        raise ValueError("control characters are not allowed")
    return value


def text_limits(max_length: int, *, min_length: int = 1, strip: bool = True) -> StringConstraints:
    return StringConstraints(
        strip_whitespace=strip,
        min_length=min_length,
        max_length=max_length,
        pattern=NO_CONTROL_PATTERN,
    )


# A text field is ``Annotated[str, text_limits(n), CLEAN_TEXT]``: the validator listed last
# runs first, so NFC and the control check come before trimming and the length limits.
CLEAN_TEXT = BeforeValidator(clean_text)


def _rfc3339(value: Any) -> Any:
    if not isinstance(value, str) or not RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-01-01T08:00:00Z")
    try:
        return datetime.fromisoformat(value.replace("z", "Z")).astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError("not a valid date-time") from None


DateTime = Annotated[
    datetime,
    BeforeValidator(_rfc3339),
    Field(json_schema_extra={"format": "date-time", "type": "string"}),
]

Amount = Annotated[StrictInt, Field(gt=0, le=MAX_AMOUNT, description="Minor units (fen)")]
# Non-negative minor units (fees, minimums): the same ceiling as an amount, far below int64.
Minor = Annotated[StrictInt, Field(ge=0, le=MAX_AMOUNT, description="Minor units (fen)")]
Currency = Literal["CNY"]
ChannelName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,31}$")]
PayeeType = Literal["alipay_account", "wechat_openid", "bank_card"]
ObjectId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{1,40}$")]
Text = Annotated[str, text_limits(128), CLEAN_TEXT]
ID_PATTERN = r"[a-z][a-z0-9]*_[0-9A-Za-z]{26}"


class IdConvertor(Convertor[str]):
    """``{transfer_id:paymux_id}``: only a Paymux id matches, so a literal sibling path
    (``/v1/transfers/quote``) answers 405 to other methods instead of "no transfer quote"."""

    regex = ID_PATTERN

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("paymux_id", IdConvertor())


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Payee(Strict):
    type: PayeeType
    account: Annotated[str, text_limits(100), CLEAN_TEXT]
    name: Annotated[str, text_limits(64), CLEAN_TEXT] | None = None

    @model_validator(mode="after")
    def _card_needs_name(self) -> Payee:
        if self.type == "bank_card":
            if not self.name:
                raise ValueError("payee.name is required for bank_card payees")
            if not self.account.isdigit() or not 12 <= len(self.account) <= 19:
                raise ValueError("a bank card number is 12 to 19 digits")
        return self


class TransferCreate(Strict):
    amount: Amount
    currency: Currency
    payee: Payee
    channel: ChannelName | None = None
    description: Text | None = None
    metadata: (
        dict[
            Annotated[str, text_limits(40, strip=False), CLEAN_TEXT],
            Annotated[str, text_limits(500, min_length=0, strip=False), CLEAN_TEXT],
        ]
        | None
    ) = Field(default=None, max_length=20)


class MerchantCreate(Strict):
    name: Annotated[str, text_limits(200), CLEAN_TEXT]


class TopupCreate(Strict):
    amount: Amount
    currency: Currency
    description: Text | None = None


class FeeRuleCreate(Strict):
    kind: Literal["price", "cost"]
    merchant_id: ObjectId | None = None
    channel: ChannelName
    payee_type: PayeeType
    # Stored as text (20 characters): at most 4 decimal places, 0..10000.
    bps: Annotated[
        Decimal,
        Field(ge=0, le=10000, max_digits=9, decimal_places=4),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "integer", "minimum": 0, "maximum": 10000},
                    {"type": "string", "pattern": r"^(10000|[0-9]{1,4}(\.[0-9]{1,4})?)$"},
                ],
                "description": "Basis points (1/100 of a percent), 0 to 10000, 4 decimals",
            }
        ),
    ] = Decimal(0)
    fixed: Minor = 0
    minimum: Minor = 0
    maximum: Minor | None = None
    effective_at: DateTime | None = None  # default: now


Reference = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]


class BatchItemCreate(TransferCreate):
    """One transfer of a batch; ``reference`` is its idempotency key within the merchant."""

    reference: Reference


class TransferBatchCreate(Strict):
    items: list[BatchItemCreate] = Field(min_length=1, max_length=1000)
    all_or_nothing: bool = False
