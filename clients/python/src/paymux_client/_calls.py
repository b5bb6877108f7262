"""The API's requests, described once for both clients."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from paymux_client._core import Call, model_parser, new_idempotency_key, no_content, text_body
from paymux_client.models import (
    Balance,
    BalanceTransaction,
    Event,
    FeeReport,
    Merchant,
    Page,
    Quote,
    Redelivery,
    Topup,
    Transfer,
    TransferBatch,
    TransferBatchItem,
    WebhookAttempt,
    WebhookEndpoint,
)


def _iso(value: datetime | date | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime | date) else value


def _transfer_body(
    amount: int,
    currency: str,
    payee: Mapping[str, Any],
    channel: str | None,
    description: str | None,
    metadata: Mapping[str, str] | None,
) -> dict[str, Any]:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError("amount is an integer number of minor units (fen), e.g. 1234 = 12.34")
    body: dict[str, Any] = {"amount": amount, "currency": currency, "payee": dict(payee)}
    if channel is not None:
        body["channel"] = channel
    if description is not None:
        body["description"] = description
    if metadata:
        body["metadata"] = dict(metadata)
    return body


def create_transfer(
    amount: int,
    currency: str,
    payee: Mapping[str, Any],
    channel: str | None,
    description: str | None,
    metadata: Mapping[str, str] | None,
    idempotency_key: str | None,
) -> Call[Transfer]:
    return Call(
        "POST",
        "/v1/transfers",
        model_parser(Transfer),
        json=_transfer_body(amount, currency, payee, channel, description, metadata),
        idempotency_key=idempotency_key or new_idempotency_key(),
    )


def quote_transfer(
    amount: int,
    currency: str,
    payee: Mapping[str, Any],
    channel: str | None,
) -> Call[Quote]:
    body = _transfer_body(amount, currency, payee, channel, None, None)
    # A quote moves no money: repeatable, so it carries a key only to be retried safely.
    return Call(
        "POST",
        "/v1/transfers/quote",
        model_parser(Quote),
        json=body,
        idempotency_key=new_idempotency_key(),
    )


def retrieve_transfer(transfer_id: str) -> Call[Transfer]:
    return Call("GET", f"/v1/transfers/{transfer_id}", model_parser(Transfer))


def list_transfers(
    cursor: str | None,
    *,
    limit: int,
    status: str | None,
    channel: str | None,
    created_gte: datetime | str | None,
    created_lt: datetime | str | None,
    merchant_id: str | None,
) -> Call[Page[Transfer]]:
    return Call(
        "GET",
        "/v1/transfers",
        model_parser(Page[Transfer]),
        params={
            "limit": limit,
            "cursor": cursor,
            "status": status,
            "channel": channel,
            "created_gte": _iso(created_gte),
            "created_lt": _iso(created_lt),
            "merchant_id": merchant_id,
        },
    )


def cancel_transfer(transfer_id: str, idempotency_key: str | None) -> Call[Transfer]:
    return Call(
        "POST",
        f"/v1/transfers/{transfer_id}/cancel",
        model_parser(Transfer),
        idempotency_key=idempotency_key or new_idempotency_key(),
    )


def create_transfer_batch(
    items: list[Mapping[str, Any]], all_or_nothing: bool, idempotency_key: str | None
) -> Call[TransferBatch]:
    """Each item: ``reference`` (its own idempotency key), amount, currency, payee, ..."""
    for item in items:
        amount = item.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise TypeError("every item's amount is an integer number of minor units (fen)")
    return Call(
        "POST",
        "/v1/transfer_batches",
        model_parser(TransferBatch),
        json={"items": [dict(i) for i in items], "all_or_nothing": all_or_nothing},
        idempotency_key=idempotency_key or new_idempotency_key(),
    )


def retrieve_transfer_batch(batch_id: str) -> Call[TransferBatch]:
    return Call("GET", f"/v1/transfer_batches/{batch_id}", model_parser(TransferBatch))


def list_transfer_batch_items(
    cursor: str | None, *, batch_id: str, limit: int
) -> Call[Page[TransferBatchItem]]:
    return Call(
        "GET",
        f"/v1/transfer_batches/{batch_id}/items",
        model_parser(Page[TransferBatchItem]),
        params={"limit": limit, "cursor": cursor},
    )


def retrieve_balance(currency: str) -> Call[Balance]:
    return Call("GET", "/v1/balance", model_parser(Balance), params={"currency": currency})


def list_balance_transactions(cursor: str | None, *, limit: int) -> Call[Page[BalanceTransaction]]:
    return Call(
        "GET",
        "/v1/balance_transactions",
        model_parser(Page[BalanceTransaction]),
        params={"limit": limit, "cursor": cursor},
    )


def create_webhook_endpoint(
    url: str, event_types: list[str] | None, description: str | None
) -> Call[WebhookEndpoint]:
    body: dict[str, Any] = {"url": url}
    if event_types is not None:
        body["event_types"] = event_types
    if description is not None:
        body["description"] = description
    return Call("POST", "/v1/webhook_endpoints", model_parser(WebhookEndpoint), json=body)


def retrieve_webhook_endpoint(endpoint_id: str) -> Call[WebhookEndpoint]:
    return Call("GET", f"/v1/webhook_endpoints/{endpoint_id}", model_parser(WebhookEndpoint))


def update_webhook_endpoint(endpoint_id: str, changes: dict[str, Any]) -> Call[WebhookEndpoint]:
    return Call(
        "PATCH",
        f"/v1/webhook_endpoints/{endpoint_id}",
        model_parser(WebhookEndpoint),
        json=changes,
    )


def delete_webhook_endpoint(endpoint_id: str) -> Call[None]:
    return Call("DELETE", f"/v1/webhook_endpoints/{endpoint_id}", no_content)


def rotate_webhook_secret(endpoint_id: str, overlap_seconds: int | None) -> Call[WebhookEndpoint]:
    body = {} if overlap_seconds is None else {"overlap_seconds": overlap_seconds}
    return Call(
        "POST",
        f"/v1/webhook_endpoints/{endpoint_id}/rotate_secret",
        model_parser(WebhookEndpoint),
        json=body,
    )


def list_webhook_endpoints(cursor: str | None, *, limit: int) -> Call[Page[WebhookEndpoint]]:
    return Call(
        "GET",
        "/v1/webhook_endpoints",
        model_parser(Page[WebhookEndpoint]),
        params={"limit": limit, "cursor": cursor},
    )


def list_webhook_attempts(
    cursor: str | None, *, endpoint_id: str, limit: int
) -> Call[Page[WebhookAttempt]]:
    return Call(
        "GET",
        f"/v1/webhook_endpoints/{endpoint_id}/attempts",
        model_parser(Page[WebhookAttempt]),
        params={"limit": limit, "cursor": cursor},
    )


def list_events(cursor: str | None, *, limit: int, type: str | None) -> Call[Page[Event]]:
    return Call(
        "GET",
        "/v1/events",
        model_parser(Page[Event]),
        params={"limit": limit, "cursor": cursor, "type": type},
    )


def retrieve_event(event_id: str) -> Call[Event]:
    return Call("GET", f"/v1/events/{event_id}", model_parser(Event))


def redeliver_event(event_id: str, endpoint_id: str | None) -> Call[Redelivery]:
    body = {} if endpoint_id is None else {"endpoint_id": endpoint_id}
    return Call("POST", f"/v1/events/{event_id}/redeliver", model_parser(Redelivery), json=body)


def _report_params(
    from_: date | str,
    to: date | str,
    tz: str | None,
    group_by: list[str] | None,
    merchant_id: str | None,
    fmt: str,
) -> dict[str, Any]:
    return {
        "from": _iso(from_),
        "to": _iso(to),
        "tz": tz,
        "group_by": ",".join(group_by) if group_by else None,
        "merchant_id": merchant_id,
        "format": fmt,
    }


def fee_report(
    from_: date | str,
    to: date | str,
    tz: str | None,
    group_by: list[str] | None,
    merchant_id: str | None,
) -> Call[FeeReport]:
    return Call(
        "GET",
        "/v1/reports/fees",
        model_parser(FeeReport),
        params=_report_params(from_, to, tz, group_by, merchant_id, "json"),
    )


def fee_report_csv(
    from_: date | str,
    to: date | str,
    tz: str | None,
    group_by: list[str] | None,
    merchant_id: str | None,
) -> Call[str]:
    return Call(
        "GET",
        "/v1/reports/fees",
        text_body,
        params=_report_params(from_, to, tz, group_by, merchant_id, "csv"),
    )


def create_merchant(name: str) -> Call[Merchant]:
    # No idempotency on the gateway side: a lost answer is not retried (no second merchant).
    return Call("POST", "/v1/merchants", model_parser(Merchant), json={"name": name})


def list_merchants() -> Call[Page[Merchant]]:
    return Call("GET", "/v1/merchants", model_parser(Page[Merchant]))


def create_topup(
    merchant_id: str,
    amount: int,
    currency: str,
    description: str | None,
    idempotency_key: str | None,
) -> Call[Topup]:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError("amount is an integer number of minor units (fen)")
    body: dict[str, Any] = {"amount": amount, "currency": currency}
    if description is not None:
        body["description"] = description
    return Call(
        "POST",
        f"/v1/merchants/{merchant_id}/topups",
        model_parser(Topup),
        json=body,
        idempotency_key=idempotency_key or new_idempotency_key(),
    )


def merchant_balance(merchant_id: str) -> Call[Balance]:
    return Call("GET", f"/v1/merchants/{merchant_id}/balance", model_parser(Balance))
