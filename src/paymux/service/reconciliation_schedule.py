"""The daily close: reconcile every channel that has statements and seal the ledger's day.

Each gateway replica runs this loop; a (job, day) row claimed with an insert-if-absent is
the lock, so however many replicas there are, each day's work runs once. At the configured
local time (default 10:30 Asia/Shanghai, after the channels have published the previous
day's statements) it reconciles the previous business day and computes its ledger digest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from paymux import metrics
from paymux.channels.base import statement_source
from paymux.service.gateway import Gateway
from paymux.service.ledger_digests import seal_days
from paymux.service.reconciliation import StatementProblem, run_reconciliation
from paymux.store import reconciliation_repo as repo

log = logging.getLogger(__name__)

CHECK_EVERY_SECONDS = 60.0


def _me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def due_day(now: datetime, tz: ZoneInfo, at: time) -> str | None:
    """The business day to close at ``now``, or None before the configured time."""
    local = now.astimezone(tz)
    if local.time() < at:
        return None
    return (local.date() - timedelta(days=1)).isoformat()


async def _claimed(gw: Gateway, job: str, day: str) -> bool:
    now = gw.clock()
    return await gw.db.run_write(lambda c: repo.claim_job(c, job, day, who=_me(), now=now))


async def _finish(gw: Gateway, job: str, day: str) -> None:
    now = gw.clock()
    await gw.db.run_write(lambda c: repo.finish_job(c, job, day, now=now))


async def run_due_jobs(gw: Gateway) -> list[str]:
    """Run today's close if it is due and no replica has claimed it; returns jobs run."""
    tz = ZoneInfo(gw.settings.business_timezone)
    day = due_day(gw.clock(), tz, time.fromisoformat(gw.settings.reconciliation_time))
    if day is None:
        return []
    done: list[str] = []
    if await _claimed(gw, "ledger_digest", day):
        try:
            await seal_days(gw, through=datetime.fromisoformat(day).date())
        finally:
            await _finish(gw, "ledger_digest", day)
        done.append("ledger_digest")
    for name, channel in sorted(gw.channels.items()):
        if statement_source(channel) is None:
            continue
        job = f"reconcile:{name}"
        if not await _claimed(gw, job, day):
            continue
        try:
            await run_reconciliation(
                gw, name, datetime.fromisoformat(day).date(), trigger="schedule"
            )
        except StatementProblem as exc:
            metrics.operator_alerts.labels("reconciliation_run_failed").inc()
            log.error("ALERT scheduled reconciliation of %s for %s failed: %s", name, day, exc)
        finally:
            await _finish(gw, job, day)
        done.append(job)
    return done


async def run_reconciliation_scheduler(gw: Gateway, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await run_due_jobs(gw)
        except Exception:  # the loop must survive a bad day; the next tick retries nothing
            log.exception("daily close failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=CHECK_EVERY_SECONDS)
