"""Response shapes for the OpenAPI document (what the views in service/ return).

Handlers build their JSON with the view functions and return it as is; these models only
describe it, so the document says what a client really receives. The schemathesis run in
CI checks every response against them. Extra keys are allowed (new fields are additive).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

TransferStatus = Literal[
    "pending",
    "processing",
    "requires_confirmation",
    "succeeded",
    "failed",
    "returned",
    "canceled",
]
Timestamp = str  # RFC 3339 (UTC, "Z")


class PayeeOut(BaseModel):
    type: str
    account: str = Field(description="Masked: enough to recognise, never the full account")
    name: str | None


class TransferOut(BaseModel):
    id: str
    object: Literal["transfer"]
    status: TransferStatus
    amount: int
    currency: str
    fee: int
    payee: PayeeOut
    channel: str
    channel_reference: str
    channel_order_id: str | None
    failure_code: str | None
    failure_message: str | None
    description: str | None
    metadata: dict[str, str]
    created_at: Timestamp
    updated_at: Timestamp | None
    completed_at: Timestamp | None
    merchant_id: str | None = Field(None, description="Operators only")
    channel_cost: int | None = Field(None, description="Operators only")
    margin: int | None = Field(None, description="Operators only")


class ListOf(BaseModel):
    object: Literal["list"]
    has_more: bool
    next_cursor: str | None


class TransferList(ListOf):
    data: list[TransferOut]


class QuoteOut(BaseModel):
    object: Literal["quote"]
    amount: int
    currency: str
    channel: str
    fee: int
    total: int
    rounding: str


class BalanceOut(BaseModel):
    object: Literal["balance"]
    currency: str
    available: int
    held: int


class BalanceTransactionOut(BaseModel):
    id: str
    object: Literal["balance_transaction"]
    type: str
    currency: str
    available_change: int
    held_change: int
    source: str | None
    source_type: str
    created_at: Timestamp


class BalanceTransactionList(ListOf):
    data: list[BalanceTransactionOut]


class MerchantOut(BaseModel):
    id: str
    object: Literal["merchant"]
    name: str
    key_hint: str
    created_at: Timestamp


class MerchantCreated(MerchantOut):
    secret_key: str = Field(description="Shown once")


class MerchantList(ListOf):
    data: list[MerchantOut]


class TopupOut(BaseModel):
    id: str
    object: Literal["topup"]
    merchant_id: str
    amount: int
    currency: str
    description: str | None
    created_at: Timestamp


class FeeRuleOut(BaseModel):
    kind: Literal["price", "cost"]
    merchant_id: str | None
    channel: str
    payee_type: str
    bps: str
    fixed: int
    minimum: int
    maximum: int | None
    effective_at: Timestamp
    version: int | None


class FeeRuleCreated(FeeRuleOut):
    object: Literal["fee_rule"]


class FeeScheduleOut(BaseModel):
    object: Literal["fee_schedule"]
    rounding: str
    data: list[FeeRuleOut]


class EventOut(BaseModel):
    id: str
    object: Literal["event"]
    type: str
    created_at: Timestamp
    data: dict[str, Any]


class EventList(ListOf):
    data: list[EventOut]


class DeliveryOut(BaseModel):
    id: str
    object: Literal["webhook_delivery"]
    event_id: str
    endpoint_id: str
    status: str
    attempts: int
    next_attempt_at: Timestamp | None
    created_at: Timestamp


class EventWithDeliveries(EventOut):
    deliveries: list[DeliveryOut]


class RedeliveryOut(BaseModel):
    object: Literal["redelivery"]
    event_id: str
    deliveries: list[DeliveryOut]


class EndpointOut(BaseModel):
    id: str
    object: Literal["webhook_endpoint"]
    url: str
    event_types: list[str]
    description: str | None
    enabled: bool
    created_at: Timestamp
    updated_at: Timestamp | None


class EndpointList(ListOf):
    data: list[EndpointOut]


class EndpointCreated(EndpointOut):
    secret: str = Field(description="The signing secret (whsec_...), shown once")


class SecretRotated(EndpointCreated):
    previous_secret_expires_at: Timestamp | None


class AttemptOut(BaseModel):
    id: str
    object: Literal["webhook_attempt"]
    endpoint_id: str
    event_id: str
    delivery_id: str
    attempt: int
    ok: bool
    status_code: int | None
    latency_ms: int
    response_excerpt: str | None
    error: str | None
    created_at: Timestamp


class AttemptList(ListOf):
    data: list[AttemptOut]


class FeeReportLine(BaseModel):
    currency: str
    transfer_count: int
    volume: int
    fees: int
    channel_cost: int | None = Field(None, description="Operators only")
    margin: int | None = Field(None, description="Operators only")


class FeeReportOut(BaseModel):
    object: Literal["fee_report"]
    from_: str = Field(alias="from")
    to: str
    timezone: str
    period_start: Timestamp
    period_end: Timestamp
    group_by: list[str]
    merchant_id: str | None
    data: list[FeeReportLine]
    totals: list[FeeReportLine]


class HealthOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    status: Literal["ready"]
    checks: dict[str, Any]


class ApiKeyOut(BaseModel):
    id: str
    object: Literal["api_key"]
    name: str | None
    prefix: str
    scopes: list[str]
    created_at: Timestamp
    expires_at: Timestamp | None
    revoked_at: Timestamp | None
    last_used_at: Timestamp | None
    merchant_id: str | None = Field(None, description="Merchant keys")
    operator_id: str | None = Field(None, description="Operator keys")
    role: str | None = Field(None, description="Operator keys")


class ApiKeyCreated(ApiKeyOut):
    secret: str = Field(description="Shown once")


class ApiKeyList(ListOf):
    data: list[ApiKeyOut]


class ApiKeyRolled(BaseModel):
    object: Literal["api_key_roll"]
    old: ApiKeyOut
    new: ApiKeyCreated


class RateLimitOut(BaseModel):
    object: Literal["rate_limit"]
    merchant_id: str
    per_second: int
    burst: int


class OperatorOut(BaseModel):
    id: str
    object: Literal["operator"]
    name: str
    role: str
    created_at: Timestamp
    disabled_at: Timestamp | None


class OperatorCreated(OperatorOut):
    api_key: ApiKeyCreated


class OperatorList(ListOf):
    data: list[OperatorOut]


class AuditEventOut(BaseModel):
    object: Literal["audit_event"]
    seq: int
    id: str
    occurred_at: str
    action: str
    object_type: str
    object_id: str | None
    merchant_id: str | None
    actor_key_id: str | None
    actor_kind: str
    actor_role: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditEventList(ListOf):
    data: list[AuditEventOut]


class BatchTotals(BaseModel):
    amount: int
    fee: int
    currency: str


class TransferBatchOut(BaseModel):
    id: str
    object: Literal["transfer_batch"]
    status: str
    all_or_nothing: bool
    item_count: int
    counts: dict[str, int]
    totals: BatchTotals
    created_at: Timestamp
    completed_at: Timestamp | None


class TransferBatchItemOut(BaseModel):
    id: str
    object: Literal["transfer_batch_item"]
    reference: str
    status: str
    failure_code: str | None
    transfer: TransferOut | None


class TransferBatchItemList(ListOf):
    data: list[TransferBatchItemOut]


class DiscrepancyOut(BaseModel):
    id: str
    object: Literal["reconciliation_discrepancy"]
    channel: str
    date: str
    kind: str
    state: str
    severity: str


class ReconciliationRunOut(BaseModel):
    id: str
    object: Literal["reconciliation_run"]
    channel: str
    date: str
    status: str
    trigger: str
    summary: Any
    started_at: Timestamp | None
    finished_at: Timestamp | None


class ReconciliationResultOut(ReconciliationRunOut):
    open: int
    discrepancies: list[DiscrepancyOut]


class ReconciliationRunList(BaseModel):
    object: Literal["list"]
    data: list[ReconciliationRunOut]


class StatementOut(BaseModel):
    object: Literal["statement"]
    merchant_id: str
    date: str
    currency: str
    opening_balance: int
    movements: list[dict[str, Any]]
    movement_total: int
    closing_balance: int
