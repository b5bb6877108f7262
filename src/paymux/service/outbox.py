"""Transactional outbox: events are rows written in the transaction of the change."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection

from paymux.domain.ids import new_id
from paymux.service.views import iso
from paymux.store.fastexec import Prepared
from paymux.store.tables import events

_INSERT_EVENT = Prepared(events.insert())


class Outbox:
    def __init__(self) -> None:
        # Set after a commit that wrote events, so the relay wakes without polling delay.
        self.wakeup = asyncio.Event()

    def emit(
        self,
        conn: Connection,
        *,
        merchant_id: str,
        event_type: str,
        obj: dict[str, Any],
        now: datetime,
    ) -> str:
        event_id = new_id("evt")
        payload = {
            "id": event_id,
            "type": event_type,
            "created_at": iso(now),
            "data": {"object": obj},
        }
        _INSERT_EVENT.run(
            conn,
            {
                "id": event_id,
                "merchant_id": merchant_id,
                "type": event_type,
                "object_id": obj["id"],
                "payload": orjson.dumps(payload).decode(),
                "created_at": now,
                "relayed_at": None,
            },
        )
        return event_id

    def notify_committed(self) -> None:
        self.wakeup.set()
