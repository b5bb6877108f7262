"""Refreshes the database-derived gauges of ``/metrics`` at scrape time.

Bounded twice: each read is indexed (see store/gauges_repo.py) and the whole refresh has a
time limit; scrapes closer together than ``MIN_INTERVAL`` reuse the last readings.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

from paymux import metrics
from paymux.service.gateway import Gateway
from paymux.store.gauges_repo import IN_FLIGHT_STATUSES, read_gauges

log = logging.getLogger(__name__)

ATTEMPTS_WINDOW = 1000
TIME_LIMIT_SECONDS = 2.0
MIN_INTERVAL = 1.0

_last_refresh = 0.0


def _age(now: datetime, then: datetime | None) -> float:
    return max(0.0, (now - then).total_seconds()) if then is not None else 0.0


async def refresh(gw: Gateway) -> None:
    global _last_refresh  # noqa: PLW0603 - one cache per process, like the registry itself
    if time.monotonic() - _last_refresh < MIN_INTERVAL:
        return
    now = gw.clock()
    try:
        async with asyncio.timeout(TIME_LIMIT_SECONDS), gw.db.read() as conn:
            r = await read_gauges(conn, now=now, attempts_window=ATTEMPTS_WINDOW)
    except Exception:  # a slow or broken database must not break the scrape
        metrics.gauge_refresh_failures.inc()
        log.warning("metrics gauges not refreshed", exc_info=True)
        return
    _last_refresh = time.monotonic()
    for status in IN_FLIGHT_STATUSES:
        metrics.transfers_in_flight.labels(status).set(r.in_flight.get(status, 0))
    metrics.oldest_processing_age.set(_age(now, r.oldest_processing_since))
    metrics.outbox_backlog.set(r.unrelayed_events)
    metrics.outbox_lag.set(_age(now, r.oldest_unrelayed_event_at))
    metrics.webhook_backlog.labels("now").set(r.overdue_deliveries)
    metrics.webhook_backlog.labels("later").set(r.pending_deliveries - r.overdue_deliveries)
    ratio = r.recent_failed_attempts / r.recent_attempts if r.recent_attempts else 0.0
    metrics.webhook_failure_ratio.set(ratio)
