"""The fee schedule in force: the config file's entries plus the admin API's, cached.

Config entries are version 0; rules added through the API are stored with their effective
time and take their row id as version, so a change never rewrites history: a transfer keeps
the fee frozen on it at creation, and a quote at any instant is reproducible.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

from paymux.domain.fees import (
    FeeQuote,
    FeeScheduleEntry,
    Rounding,
    load_schedule,
    quote,
    schedule_rounding,
)
from paymux.store import fee_rules_repo
from paymux.store.db import Database


class FeeBook:
    def __init__(self, db: Database, config: dict[str, Any], *, refresh_seconds: float = 5.0):
        self._db = db
        self._base = load_schedule(config)
        self.rounding: Rounding = schedule_rounding(config)
        self._stored: list[FeeScheduleEntry] = []
        self._loaded_at = -1e9
        self._refresh_seconds = refresh_seconds
        self._generation = 0
        self._refreshing: asyncio.Future[None] | None = None

    async def entries(self) -> list[FeeScheduleEntry]:
        # Other replicas may add rules; a short-lived cache keeps the hot path off the DB.
        if time.monotonic() - self._loaded_at > self._refresh_seconds:
            # One load for every request that finds the copy stale at once (at 50 requests
            # in flight, each used to run its own), shielded from any one caller's cancel.
            refresh = self._refreshing
            if refresh is None:
                refresh = self._refreshing = asyncio.ensure_future(self.reload())
                refresh.add_done_callback(self._refreshed)
            await asyncio.shield(refresh)
        return self._base + self._stored

    def _refreshed(self, task: asyncio.Future[None]) -> None:
        if self._refreshing is task:
            self._refreshing = None
        if not task.cancelled():
            task.exception()  # retrieved: each waiter has raised it already

    async def reload(self) -> None:
        generation = self._generation
        stored = await fee_rules_repo.load_all(self._db)
        # A load that began before an invalidate() may hold the old rules: it is not kept.
        if generation == self._generation:
            self._stored = stored
            self._loaded_at = time.monotonic()

    async def quote(
        self, *, merchant_id: str, channel: str, payee_type: str, amount: int, at: datetime
    ) -> FeeQuote:
        return quote(
            await self.entries(),
            merchant_id=merchant_id,
            channel=channel,
            payee_type=payee_type,
            amount=amount,
            at=at,
            rounding=self.rounding,
        )

    def invalidate(self) -> None:
        """A rule was added here: the next quote reads the rules again, not a load already
        under way (it may have started before the rule was committed)."""
        self._loaded_at = -1e9
        self._generation += 1
        self._refreshing = None


def entry_view(entry: FeeScheduleEntry) -> dict[str, Any]:
    return {
        "kind": entry.kind.value,
        "merchant_id": entry.merchant_id,
        "channel": entry.channel,
        "payee_type": entry.payee_type,
        "bps": str(entry.rule.bps),
        "fixed": entry.rule.fixed,
        "minimum": entry.rule.minimum,
        "maximum": entry.rule.maximum,
        "effective_at": entry.effective_at.isoformat(),
        "version": entry.version,
    }
