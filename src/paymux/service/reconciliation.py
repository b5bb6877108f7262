"""Reconciliation runs (对账): download a channel's statement, match it, heal what is safe.

A run, for one channel and one business day:

1. downloads the statement and verifies it (signature / hash / totals), keeping the file
   under ``<data_dir>/statements/`` with its SHA-256 for audit;
2. streams it into one small record per reference, and matches the references against
   our transfers in chunks (never all transfers at once), then pages through the transfers
   we completed that day to find the ones the statement lacks;
3. heals each status mismatch only by asking the channel (query API) and applying its answer
   through the one state machine (:func:`paymux.service.transfers.apply_result`); a move the
   machine forbids is ``critical`` and stays open;
4. records the run and its discrepancies in one transaction.

If the statement cannot be fetched or verified the run raises :class:`StatementProblem` and
writes nothing (the downloaded file is removed).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from paymux import metrics
from paymux.channels.base import (
    ChannelError,
    StatementCorrupt,
    StatementUnavailable,
    statement_source,
)
from paymux.domain.ids import new_id
from paymux.domain.reconciliation import (
    Discrepancy,
    DiscrepancyKind,
    DiscrepancyState,
    Finding,
    Judged,
    RunRecord,
    Severity,
    StatementDay,
    heal_decision,
    judge,
    missing_in_statement,
)
from paymux.request_context import current_request_id
from paymux.service.access import audit_draft
from paymux.service.errors import Conflict, InvalidRequest, NotFound, ServiceError
from paymux.service.gateway import Gateway
from paymux.service.transfers import apply_result, get_transfer, order_for
from paymux.store import audit_repo
from paymux.store import reconciliation_repo as repo
from paymux.store.db import WriteTx

log = logging.getLogger(__name__)

MATCH_CHUNK = 1000  # references looked up per query
PAGE = 1000  # transfers read per page when looking for missing lines


class StatementProblem(ServiceError):
    """The run could not complete: nothing was written."""

    status, code, title = 502, "statement_unavailable", "Statement unavailable"


class StatementInvalid(StatementProblem):
    status, code, title = 502, "statement_invalid", "Statement does not verify"


@dataclass(frozen=True)
class RunResult:
    run: RunRecord
    discrepancies: list[Discrepancy]


def business_window(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=tz)
    return start, start + timedelta(days=1)


def statements_dir(gw: Gateway, channel: str, day: str, run_id: str) -> Path:
    return Path(gw.settings.data_dir) / "statements" / channel / day / run_id


async def run_reconciliation(
    gw: Gateway, channel_name: str, day: date, *, trigger: str = "api"
) -> RunResult:
    channel = gw.channels.get(channel_name)
    if channel is None:
        raise NotFound(f"no enabled channel {channel_name!r}")
    source = statement_source(channel)
    if source is None:
        raise InvalidRequest(f"channel {channel_name!r} provides no statements")
    tz = ZoneInfo(gw.settings.business_timezone)
    bill_date = day.isoformat()
    run_id = new_id("rcn")
    started = gw.clock()
    dest_dir = statements_dir(gw, channel_name, bill_date, run_id)
    try:
        path = await source.download_statement(bill_date, dest_dir)
        statement = StatementDay()
        sha256 = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 16):
                sha256.update(chunk)
        statement.add_all(source.iter_statement(path))
    except StatementCorrupt as exc:
        shutil.rmtree(dest_dir, ignore_errors=True)
        raise StatementInvalid(f"{channel_name} statement of {bill_date}: {exc}") from None
    except (StatementUnavailable, ChannelError) as exc:
        shutil.rmtree(dest_dir, ignore_errors=True)
        raise StatementProblem(f"{channel_name} statement of {bill_date}: {exc}") from None

    findings, matched, merchants = await _match(gw, channel_name, day, tz, statement)
    judged = [await _heal(gw, f) for f in findings]
    summary = _summary(statement, judged, matched)
    run = RunRecord(
        id=run_id,
        channel=channel_name,
        bill_date=bill_date,
        status="completed",
        trigger=trigger,
        statement_path=str(path),
        statement_sha256=sha256.hexdigest(),
        summary=orjson.dumps(summary).decode(),
        error=None,
        started_at=started,
        finished_at=gw.clock(),
    )
    now = gw.clock()
    paid_refs = [r for r, lines in statement.by_reference.items() if lines.paid]
    request_id = current_request_id()

    def write(conn: WriteTx) -> list[Discrepancy]:
        opened = repo.save_run(conn, run, judged, merchants, now=now)
        repo.clear_missing_in_statement(conn, paid_refs, day=bill_date, run_id=run_id, now=now)
        for dsc in opened:  # the operator-facing event, in the audit log's hash chain
            audit_repo.append(
                conn,
                audit_draft(
                    None,
                    "reconciliation.discrepancy_opened",
                    "reconciliation_discrepancy",
                    dsc.id,
                    dsc.merchant_id,
                    after=_audit_view(dsc),
                    request_id=request_id,
                ),
                now,
            )
        return opened

    opened = await gw.db.run_write(write)
    for dsc in opened:
        metrics.operator_alerts.labels(f"reconciliation_{dsc.kind.value}").inc()
        # The operator-facing event: one structured line per newly opened discrepancy.
        log.error(
            "ALERT reconciliation discrepancy %s: %s %s %s on %s (%s): %s",
            dsc.id,
            dsc.severity.value,
            dsc.kind.value,
            dsc.reference,
            channel_name,
            bill_date,
            dsc.detail,
        )
    await refresh_open_gauge(gw)
    async with gw.db.read() as conn:
        rows = await repo.discrepancies(conn, channel=channel_name, bill_date=bill_date)
    return RunResult(run, rows)


async def _match(
    gw: Gateway, channel: str, day: date, tz: ZoneInfo, statement: StatementDay
) -> tuple[list[Finding], int, dict[str, str]]:
    findings: list[Finding] = []
    merchants: dict[str, str] = {}
    matched = 0
    refs = list(statement.by_reference)
    for start in range(0, len(refs), MATCH_CHUNK):
        chunk = refs[start : start + MATCH_CHUNK]
        async with gw.db.read() as conn:
            known = await repo.transfers_by_reference(conn, chunk)
        for ref in chunk:
            transfer = known.get(ref)
            found = judge(statement.by_reference[ref], transfer, channel)
            if transfer is not None and not found:
                matched += 1
            elif transfer is not None:
                merchants[transfer.id] = transfer.merchant_id  # only where there is a finding
            findings += found
    start_at, end_at = business_window(day, tz)
    after: tuple[datetime, str] | None = None
    while True:
        async with gw.db.read() as conn:
            page = await repo.paid_in_window(
                conn, channel, start_at, end_at, after=after, limit=PAGE
            )
        for transfer, _completed_at in page:
            lines = statement.by_reference.get(transfer.reference)
            if lines is None or not lines.paid:
                merchants[transfer.id] = transfer.merchant_id
                findings.append(missing_in_statement(transfer, day.isoformat()))
        if len(page) < PAGE:
            break
        after = (page[-1][1], page[-1][0].id)
    return findings, matched, merchants


async def _heal(gw: Gateway, finding: Finding) -> Judged:
    """Ask the channel about a status mismatch and apply what the state machine allows."""
    if not finding.needs_channel_query or finding.transfer_id is None:
        return Judged(finding, DiscrepancyState.open, Severity.normal)
    row = await get_transfer(gw, finding.transfer_id, None)
    channel = gw.channels[row.channel]
    metrics.channel_calls.labels(channel.name, "reconcile_query").inc()
    try:
        answer = await channel.query(order_for(gw, row))
    except Exception as exc:  # an adapter bug must not abort the run: leave it open
        log.exception("reconciliation query for %s raised", finding.reference)
        return Judged(finding, DiscrepancyState.open, Severity.normal, _evidence(error=str(exc)))
    decision = heal_decision(row.status, answer.outcome)
    evidence: dict[str, Any] = {
        "query_outcome": answer.outcome.value,
        "channel_status": answer.raw_status,
        "paymux_status_before": row.status.value,
        "decision": decision,
    }
    if decision == "apply":
        after = await apply_result(gw, row.id, answer, source="reconciliation")
        evidence["paymux_status_after"] = after.status.value
        return Judged(finding, DiscrepancyState.resolved, Severity.normal, _evidence(**evidence))
    if decision == "critical":
        log.critical(
            "ALERT reconciliation: %s %s says %s but Paymux holds %s (a move the state "
            "machine forbids: money moved without a matching entry)",
            row.channel,
            finding.reference,
            answer.outcome.value,
            row.status.value,
        )
        return Judged(finding, DiscrepancyState.open, Severity.critical, _evidence(**evidence))
    return Judged(finding, DiscrepancyState.open, Severity.normal, _evidence(**evidence))


def _evidence(**values: Any) -> str:
    return orjson.dumps(values).decode()


def _summary(statement: StatementDay, judged: Sequence[Judged], matched: int) -> dict[str, Any]:
    t = statement.totals
    by_class = {k.value: 0 for k in DiscrepancyKind}
    open_by_class = {k.value: 0 for k in DiscrepancyKind}
    for item in judged:
        by_class[item.finding.kind.value] += 1
        if item.state is DiscrepancyState.open:
            open_by_class[item.finding.kind.value] += 1
    return {
        "statement": {
            "lines": t.lines,
            "references": len(statement.by_reference),
            "payments": t.payments,
            "payment_total": t.payment_total,
            "refunds": t.refunds,
            "refund_total": t.refund_total,
            "fees": t.fees,
            "fee_total": t.fee_total,
            "other_lines": t.other,
        },
        "matched_references": matched,
        "found": by_class,
        "open": open_by_class,
        "healed": sum(1 for j in judged if j.state is DiscrepancyState.resolved),
        "critical": sum(1 for j in judged if j.severity is Severity.critical),
    }


async def refresh_open_gauge(gw: Gateway) -> None:
    async with gw.db.read() as conn:
        counts = await repo.open_counts(conn)
    metrics.reconciliation_open.clear()
    for (channel, kind, severity), n in counts.items():
        metrics.reconciliation_open.labels(channel, kind, severity).set(n)


# --- operator reads and actions ------------------------------------------------------------


async def list_runs(gw: Gateway, channel: str | None, limit: int) -> list[RunRecord]:
    async with gw.db.read() as conn:
        return await repo.list_runs(conn, channel=channel, limit=limit)


async def get_run(
    gw: Gateway, run_id: str, *, kind: str | None = None, state: str | None = None
) -> RunResult:
    async with gw.db.read() as conn:
        run = await repo.get_run(conn, run_id)
        if run is None:
            raise NotFound(f"no reconciliation run {run_id}")
        rows = await repo.discrepancies(
            conn, channel=run.channel, bill_date=run.bill_date, kind=kind, state=state
        )
    return RunResult(run, rows)


async def resolve_discrepancy(gw: Gateway, dsc_id: str, *, who: str, reason: str) -> Discrepancy:
    """Close an open discrepancy (the API records the operator's action in the audit log)."""
    now = gw.clock()
    done = await gw.db.run_write(
        partial(repo.resolve, dsc_id=dsc_id, who=who, reason=reason, now=now)
    )
    async with gw.db.read() as conn:
        found = await repo.get_discrepancy(conn, dsc_id)
    if found is None:
        raise NotFound(f"no discrepancy {dsc_id}")
    if not done:
        raise Conflict(f"discrepancy {dsc_id} is already resolved")
    await refresh_open_gauge(gw)
    return found


def _audit_view(d: Discrepancy) -> dict[str, Any]:
    return {
        "channel": d.channel,
        "date": d.bill_date,
        "kind": d.kind.value,
        "severity": d.severity.value,
        "reference": d.reference,
        "transfer_id": d.transfer_id,
        "statement_amount": d.statement_amount,
        "paymux_amount": d.paymux_amount,
        "detail": d.detail,
    }
