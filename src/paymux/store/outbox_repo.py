"""The transactional outbox's write: an event row in the caller's transaction.

Events are written in the same transaction as the change they report (a transfer's move,
a top-up, a batch's completion); the relay (webhooks/relay.py) hands them on later.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection

from paymux.store._sqlite_driver import Statement
from paymux.store.tables import events

_INSERT_EVENT = Statement(events.insert())


def _iso(ts: datetime) -> str:
    # The API's timestamp form (service/views.iso): events carry what the API would show.
    return ts.isoformat().replace("+00:00", "Z")


def event_row(
    *, event_id: str, merchant_id: str, event_type: str, obj: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """The ``events`` row of one event (every writer of events builds it here)."""
    payload = {"id": event_id, "type": event_type, "created_at": _iso(now), "data": {"object": obj}}
    return {
        "id": event_id,
        "merchant_id": merchant_id,
        "type": event_type,
        "object_id": obj["id"],
        "payload": orjson.dumps(payload).decode(),
        "created_at": now,
        "relayed_at": None,
    }


def insert_event(
    conn: Connection,
    *,
    event_id: str,
    merchant_id: str,
    event_type: str,
    obj: dict[str, Any],
    now: datetime,
    fast: bool = True,
) -> None:
    row = event_row(
        event_id=event_id, merchant_id=merchant_id, event_type=event_type, obj=obj, now=now
    )
    _INSERT_EVENT.run(conn, row, fast=fast)
