"""Request bodies. Money fields are StrictInt minor units; unknown fields are refused."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, model_validator

from paymux.domain.money import MAX_AMOUNT

Amount = Annotated[StrictInt, Field(gt=0, le=MAX_AMOUNT, description="Minor units (fen)")]
Currency = Literal["CNY"]
ChannelName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,31}$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Payee(Strict):
    type: Literal["alipay_account", "wechat_openid", "bank_card"]
    account: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    name: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)] | None
    ) = None

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
            Annotated[str, StringConstraints(min_length=1, max_length=40)],
            Annotated[str, StringConstraints(max_length=500)],
        ]
        | None
    ) = Field(default=None, max_length=20)


class MerchantCreate(Strict):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class TopupCreate(Strict):
    amount: Amount
    currency: Currency
    description: Text | None = None


class FeeRuleCreate(Strict):
    kind: Literal["price", "cost"]
    merchant_id: str | None = None
    channel: ChannelName
    payee_type: Literal["alipay_account", "wechat_openid", "bank_card"]
    bps: Annotated[Decimal, Field(ge=0, le=10000)] | StrictInt = 0
    fixed: Annotated[StrictInt, Field(ge=0)] = 0
    minimum: Annotated[StrictInt, Field(ge=0)] = 0
    maximum: Annotated[StrictInt, Field(ge=0)] | None = None
    effective_at: datetime | None = None  # default: now


Reference = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]


class BatchItemCreate(TransferCreate):
    """One transfer of a batch; ``reference`` is its idempotency key within the merchant."""

    reference: Reference


class TransferBatchCreate(Strict):
    items: list[BatchItemCreate] = Field(min_length=1, max_length=1000)
    all_or_nothing: bool = False
