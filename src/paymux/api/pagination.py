"""Cursor pagination shared by every list endpoint: newest first, the id is the cursor."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Query

from paymux.service.errors import InvalidRequest

Limit = Query(20, ge=1, le=100, description="Page size (at most 100)")
Cursor = Query(None, max_length=64, description="`next_cursor` of the previous page")


def page(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": data,
        "has_more": has_more,
        "next_cursor": data[-1]["id"] if has_more and data else None,
    }


def aware(value: datetime | None, name: str) -> datetime | None:
    """Timestamps in queries must carry an offset: a naive one is ambiguous money-wise."""
    if value is not None and value.tzinfo is None:
        raise InvalidRequest(f"{name} needs a UTC offset, e.g. 2026-01-01T00:00:00+08:00")
    return value
