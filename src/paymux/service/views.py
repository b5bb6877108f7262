"""The JSON shapes of our objects, shared by API responses and webhook events."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson


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


def transfer_view(row: Mapping[str, Any], *, operator: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": row["id"],
        "object": "transfer",
        "status": row["status"],
        "amount": row["amount"],
        "currency": row["currency"],
        "fee": row["fee"],
        "payee": {
            "type": row["payee_type"],
            "account": mask_account(row["payee_type"], row["payee_account"]),
            "name": mask_name(row["payee_name"]),
        },
        "channel": row["channel"],
        "channel_reference": row["channel_reference"],
        "channel_order_id": row["channel_order_id"],
        "failure_code": row["failure_code"],
        "failure_message": row["failure_message"],
        "channel_failure_code": row.get("channel_failure_code"),
        "channel_failure_message": row.get("channel_failure_message"),
        "next_action": (
            orjson.loads(row["next_action"])
            if row.get("next_action") and row["status"] == "requires_confirmation"
            else None
        ),
        "description": row["description"],
        "metadata": orjson.loads(row["metadata"]) if row["metadata"] else {},
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "completed_at": iso(row["completed_at"]),
    }
    if operator:
        view["merchant_id"] = row["merchant_id"]
        view["channel_cost"] = row["channel_cost"]
        view["margin"] = row["fee"] - row["channel_cost"]
    return view
