"""The JSON shapes of our objects, shared by API responses and webhook events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from paymux.domain.states import TransferStatus
from paymux.domain.transfers import Transfer


def iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.isoformat().replace("+00:00", "Z")


def mask_account(payee_type: str, account: str) -> str:
    """Enough to recognise a payee, not enough to reuse the account."""
    if payee_type == "bank_card":
        return f"**** {account[-4:]}"
    if "@" in account:
        user, _, domain = account.partition("@")
        return f"{user[:2]}***@{domain}"
    if len(account) <= 8:
        return account[:2] + "*" * (len(account) - 2)
    return f"{account[:4]}***{account[-4:]}"


def mask_name(name: str | None) -> str | None:
    if not name:
        return name
    return name[0] + "*" * (len(name) - 1)


def transfer_view(t: Transfer, *, operator: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": t.id,
        "object": "transfer",
        "status": t.status.value,
        "amount": t.amount,
        "currency": t.currency,
        "fee": t.fee,
        "payee": {
            "type": t.payee_type,
            "account": mask_account(t.payee_type, t.payee_account),
            "name": mask_name(t.payee_name),
        },
        "channel": t.channel,
        "channel_reference": t.channel_reference,
        "channel_order_id": t.channel_order_id,
        "failure_code": t.failure_code,
        "failure_message": t.failure_message,
        "channel_failure_code": t.channel_failure_code,
        "channel_failure_message": t.channel_failure_message,
        "next_action": (
            orjson.loads(t.next_action)
            if t.next_action and t.status is TransferStatus.requires_confirmation
            else None
        ),
        "description": t.description,
        "metadata": orjson.loads(t.metadata) if t.metadata else {},
        "created_at": iso(t.created_at),
        "updated_at": iso(t.updated_at),
        "completed_at": iso(t.completed_at),
    }
    if operator:
        view["merchant_id"] = t.merchant_id
        view["channel_cost"] = t.channel_cost
        view["margin"] = t.fee - t.channel_cost
    return view
