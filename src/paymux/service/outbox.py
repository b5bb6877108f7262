"""Transactional outbox: events are rows written in the transaction of the change."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from paymux.domain.ids import new_id
from paymux.store.db import WriteTx
from paymux.store.outbox_repo import insert_event


class Outbox:
    def __init__(self) -> None:
        # Set after a commit that wrote events, so the relay wakes without polling delay.
        self.wakeup = asyncio.Event()

    def emit(
        self,
        conn: WriteTx,
        *,
        merchant_id: str,
        event_type: str,
        obj: dict[str, Any],
        now: datetime,
    ) -> str:
        """An event in the caller's transaction (top-ups, batches; a transfer's events are
        written by its repository with the move they report)."""
        event_id = new_id("evt")
        insert_event(
            conn,
            event_id=event_id,
            merchant_id=merchant_id,
            event_type=event_type,
            obj=obj,
            now=now,
        )
        return event_id

    def notify_committed(self) -> None:
        self.wakeup.set()
