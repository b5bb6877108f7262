"""Typed resources of the Paymux API.

Tolerant by design, so the gateway can evolve without breaking merchants: unknown fields
are kept (``model_extra``) and statuses are plain strings (compare with the constants in
:class:`TransferStatus`; a status added later parses fine). Amounts are integers in minor
units (fen); no float is ever used for money.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field


class Resource(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class TransferStatus:
    """Known transfer statuses (``Transfer.status`` is a ``str``: newer ones may appear)."""

    PENDING = "pending"
    PROCESSING = "processing"
    REQUIRES_CONFIRMATION = "requires_confirmation"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETURNED = "returned"
    CANCELED = "canceled"
    FINAL = frozenset({SUCCEEDED, FAILED, RETURNED, CANCELED})


class Payee(Resource):
    type: str
    account: str  # masked in responses
    name: str | None = None


class Transfer(Resource):
    id: str
    object: str = "transfer"
    status: str
    amount: int
    currency: str
    fee: int
    payee: Payee
    channel: str
    channel_reference: str | None = None
    channel_order_id: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime | None = None
    completed_at: datetime | None = None
    channel_failure_code: str | None = None
    channel_failure_message: str | None = None
    # requires_confirmation: what the payee's WeChat page needs (mch_id, app_id, package).
    next_action: dict[str, Any] | None = None
    # Operators (admin key) only:
    merchant_id: str | None = None
    channel_cost: int | None = None
    margin: int | None = None

    @property
    def is_final(self) -> bool:
        return self.status in TransferStatus.FINAL


class TransferBatchTotals(Resource):
    amount: int
    fee: int
    currency: str


class TransferBatch(Resource):
    """Up to 1,000 transfers accepted at once; ``counts`` per item status."""

    id: str
    object: str = "transfer_batch"
    status: str
    all_or_nothing: bool
    item_count: int
    counts: dict[str, int]
    totals: TransferBatchTotals
    created_at: datetime
    completed_at: datetime | None = None


class TransferBatchItem(Resource):
    id: str
    object: str = "transfer_batch_item"
    reference: str
    status: str
    failure_code: str | None = None
    transfer: Transfer | None = None


class Quote(Resource):
    object: str = "quote"
    amount: int
    currency: str
    channel: str
    fee: int
    total: int
    rounding: str | None = None


class Balance(Resource):
    object: str = "balance"
    currency: str
    available: int
    held: int


class BalanceTransaction(Resource):
    id: str
    object: str = "balance_transaction"
    type: str
    currency: str
    available_change: int
    held_change: int
    source: str | None = None
    source_type: str | None = None
    created_at: datetime


class Merchant(Resource):
    id: str
    object: str = "merchant"
    name: str
    key_hint: str | None = None
    created_at: datetime
    secret_key: str | None = None  # only in the creation response


class Topup(Resource):
    id: str
    object: str = "topup"
    merchant_id: str
    amount: int
    currency: str
    description: str | None = None
    created_at: datetime


class WebhookEndpoint(Resource):
    id: str
    object: str = "webhook_endpoint"
    url: str
    event_types: list[str]
    description: str | None = None
    enabled: bool
    created_at: datetime
    updated_at: datetime | None = None
    secret: str | None = None  # only when created or rotated
    previous_secret_expires_at: datetime | None = None


class WebhookAttempt(Resource):
    id: str
    object: str = "webhook_attempt"
    endpoint_id: str
    event_id: str
    delivery_id: str
    attempt: int
    ok: bool
    status_code: int | None = None
    latency_ms: int | None = None
    response_excerpt: str | None = None
    error: str | None = None
    created_at: datetime


class WebhookDelivery(Resource):
    id: str
    object: str = "webhook_delivery"
    event_id: str
    endpoint_id: str
    status: str
    attempts: int
    next_attempt_at: datetime | None = None
    created_at: datetime


class EventData(Resource):
    object: dict[str, Any]


class Event(Resource):
    """A webhook event; ``data.object`` is the resource as it was (e.g. a transfer)."""

    id: str
    object: str = "event"
    type: str
    created_at: datetime
    data: EventData
    deliveries: list[WebhookDelivery] | None = None  # when retrieved by id

    def transfer(self) -> Transfer | None:
        """The transfer this event carries, if it is a ``transfer.*`` event."""
        obj = self.data.object
        return Transfer.model_validate(obj) if obj.get("object") == "transfer" else None


class Redelivery(Resource):
    object: str = "redelivery"
    event_id: str
    deliveries: list[WebhookDelivery]


class FeeReportLine(Resource):
    """One group of the report; group fields (day, channel, payee_type, merchant) appear
    when grouped by them; ``channel_cost`` and ``margin`` for operators only."""

    currency: str
    transfer_count: int
    volume: int
    fees: int
    day: str | None = None
    channel: str | None = None
    payee_type: str | None = None
    merchant: str | None = None
    channel_cost: int | None = None
    margin: int | None = None


class FeeReport(Resource):
    object: str = "fee_report"
    from_: date = Field(alias="from")
    to: date
    timezone: str
    period_start: datetime
    period_end: datetime
    group_by: list[str]
    merchant_id: str | None = None
    data: list[FeeReportLine]
    totals: list[FeeReportLine]


T = TypeVar("T", bound=BaseModel)


class Page(BaseModel, Generic[T]):
    """One page of a list; iterate ``client.<resource>.list()`` to get every page."""

    model_config = ConfigDict(extra="allow", frozen=True)

    object: str = "list"
    data: list[T]
    has_more: bool
    next_cursor: str | None = None
