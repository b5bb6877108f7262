"""All SQL of reconciliation: runs, discrepancies, the transfers a statement is matched
against (in chunks, never all at once), and the daily-job claims."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from paymux.domain.ids import new_id
from paymux.domain.reconciliation import (
    PAID_STATUSES,
    Discrepancy,
    DiscrepancyKind,
    DiscrepancyState,
    Judged,
    RunRecord,
    Severity,
    TransferFacts,
)
from paymux.domain.states import TransferStatus
from paymux.store.reconciliation_tables import recon_discrepancies, recon_runs, scheduled_jobs
from paymux.store.tables import transfers

_T = transfers.c
_D = recon_discrepancies.c
_FACTS = (
    _T.id,
    _T.merchant_id,
    _T.channel_reference,
    _T.channel,
    _T.status,
    _T.amount,
    _T.currency,
    _T.channel_cost,
)


def _facts(row: Sequence[Any]) -> TransferFacts:
    return TransferFacts(
        id=row[0],
        merchant_id=row[1],
        reference=row[2],
        channel=row[3],
        status=TransferStatus(row[4]),
        amount=int(row[5]),
        currency=row[6],
        channel_cost=int(row[7]),
    )


async def transfers_by_reference(
    conn: AsyncConnection, references: Sequence[str]
) -> dict[str, TransferFacts]:
    """The transfers behind ``references`` (one chunk of a statement)."""
    if not references:
        return {}
    rows = await conn.execute(select(*_FACTS).where(_T.channel_reference.in_(list(references))))
    return {r[2]: _facts(r) for r in rows.all()}


async def paid_in_window(
    conn: AsyncConnection,
    channel: str,
    start: datetime,
    end: datetime,
    *,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[tuple[TransferFacts, datetime]]:
    """One page of the channel's transfers completed as paid in [start, end), in
    (completed_at, id) order; ``after`` is the last (completed_at, id) of the previous page
    (keyset paging on ix_transfers_channel_completed_at)."""
    stmt = (
        select(*_FACTS, _T.completed_at)
        .where(
            _T.channel == channel,
            _T.completed_at >= start,
            _T.completed_at < end,
            _T.status.in_([s.value for s in PAID_STATUSES]),
        )
        .order_by(_T.completed_at, _T.id)
        .limit(limit)
    )
    if after is not None:
        at, last_id = after
        stmt = stmt.where(or_(_T.completed_at > at, and_(_T.completed_at == at, _T.id > last_id)))
    return [(_facts(r), r[-1]) for r in (await conn.execute(stmt)).all()]


# --- runs and discrepancies (writes run inside the caller's transaction) -------------------


def save_run(
    conn: Connection,
    run: RunRecord,
    judged: Iterable[Judged],
    merchants: dict[str, str],
    *,
    now: datetime,
) -> list[Discrepancy]:
    """Record the run and upsert its discrepancies (one per channel/day/class/reference).

    A re-run finds the same rows: their state is kept (a resolved one stays resolved) and
    ``last_run_id`` moves on. Open discrepancies of the same channel and day that this run no
    longer finds are resolved as gone. Returns the discrepancies newly opened by this run.
    """
    conn.execute(insert(recon_runs).values(**_run_values(run)))
    opened: list[Discrepancy] = []
    seen: set[tuple[str, str]] = set()
    for item in judged:
        f = item.finding
        seen.add((f.kind.value, f.reference))
        key = and_(
            _D.channel == run.channel,
            _D.bill_date == run.bill_date,
            _D.kind == f.kind.value,
            _D.reference == f.reference,
        )
        existing = conn.execute(select(_D.id, _D.state).where(key)).first()
        if existing is not None:
            values: dict[str, Any] = {"last_run_id": run.id, "updated_at": now}
            if existing[1] == DiscrepancyState.open.value:
                # Still open: take the latest verdict (a heal may have happened meanwhile).
                values.update(
                    state=item.state.value,
                    severity=item.severity.value,
                    evidence=item.evidence,
                    paymux_status=f.paymux_status,
                    statement_amount=f.statement_amount,
                    detail=f.detail,
                )
                if item.state is DiscrepancyState.resolved:
                    values.update(resolved_at=now, resolved_by="reconciliation", resolution=_HEALED)
            conn.execute(update(recon_discrepancies).where(_D.id == existing[0]).values(**values))
            continue
        row = {
            "id": new_id("dsc"),
            "channel": run.channel,
            "bill_date": run.bill_date,
            "kind": f.kind.value,
            "reference": f.reference,
            "transfer_id": f.transfer_id,
            "merchant_id": merchants.get(f.transfer_id or ""),
            "state": item.state.value,
            "severity": item.severity.value,
            "statement_amount": f.statement_amount,
            "paymux_amount": f.paymux_amount,
            "statement_status": f.statement_status,
            "paymux_status": f.paymux_status,
            "detail": f.detail,
            "evidence": item.evidence,
            "first_run_id": run.id,
            "last_run_id": run.id,
            "created_at": now,
            "updated_at": now,
            "resolved_at": now if item.state is DiscrepancyState.resolved else None,
            "resolved_by": "reconciliation" if item.state is DiscrepancyState.resolved else None,
            "resolution": _HEALED if item.state is DiscrepancyState.resolved else None,
        }
        conn.execute(insert(recon_discrepancies).values(**row))
        if item.state is DiscrepancyState.open:
            opened.append(discrepancy_of(row))
    stale = conn.execute(
        select(_D.id, _D.kind, _D.reference).where(
            _D.channel == run.channel,
            _D.bill_date == run.bill_date,
            _D.state == DiscrepancyState.open.value,
        )
    ).all()
    for dsc_id, kind, reference in stale:
        if (kind, reference) not in seen:
            _resolve(conn, dsc_id, "reconciliation", f"no longer found by run {run.id}", now)
    return opened


_HEALED = "healed: the channel's query answer was applied through the state machine"


def clear_missing_in_statement(
    conn: Connection, references: Sequence[str], *, day: str, run_id: str, now: datetime
) -> int:
    """Resolve open ``missing_in_statement`` rows of other days whose line ``day`` carries."""
    cleared = 0
    for start in range(0, len(references), 500):
        chunk = list(references[start : start + 500])
        cleared += conn.execute(
            update(recon_discrepancies)
            .where(
                _D.kind == DiscrepancyKind.missing_in_statement.value,
                _D.state == DiscrepancyState.open.value,
                _D.bill_date != day,
                _D.reference.in_(chunk),
            )
            .values(
                state=DiscrepancyState.resolved.value,
                resolved_at=now,
                resolved_by="reconciliation",
                resolution=f"matched on the statement of {day} (run {run_id})",
                updated_at=now,
            )
        ).rowcount
    return cleared


def _resolve(conn: Connection, dsc_id: str, who: str, reason: str, now: datetime) -> int:
    return conn.execute(
        update(recon_discrepancies)
        .where(_D.id == dsc_id, _D.state == DiscrepancyState.open.value)
        .values(
            state=DiscrepancyState.resolved.value,
            resolved_at=now,
            resolved_by=who,
            resolution=reason,
            updated_at=now,
        )
    ).rowcount


def resolve(conn: Connection, *, dsc_id: str, who: str, reason: str, now: datetime) -> bool:
    """An operator closes an open discrepancy with a written reason. False if not open."""
    return _resolve(conn, dsc_id, who, reason, now) == 1


def _run_values(run: RunRecord) -> dict[str, Any]:
    return {
        "id": run.id,
        "channel": run.channel,
        "bill_date": run.bill_date,
        "status": run.status,
        "trigger": run.trigger,
        "statement_path": run.statement_path,
        "statement_sha256": run.statement_sha256,
        "summary": run.summary,
        "error": run.error,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }


def _run(row: Any) -> RunRecord:
    return RunRecord(**{k: row[k] for k in RunRecord.__dataclass_fields__})


def discrepancy_of(row: Any) -> Discrepancy:
    """A stored discrepancy row as the domain value."""
    values = {k: row[k] for k in Discrepancy.__dataclass_fields__}
    values["kind"] = DiscrepancyKind(values["kind"])
    values["state"] = DiscrepancyState(values["state"])
    values["severity"] = Severity(values["severity"])
    return Discrepancy(**values)


# --- reads ---------------------------------------------------------------------------------


async def list_runs(
    conn: AsyncConnection, *, channel: str | None = None, limit: int = 50
) -> list[RunRecord]:
    stmt = select(recon_runs).order_by(recon_runs.c.started_at.desc(), recon_runs.c.id.desc())
    if channel:
        stmt = stmt.where(recon_runs.c.channel == channel)
    rows = await conn.execute(stmt.limit(limit))
    return [_run(r) for r in rows.mappings()]


async def get_run(conn: AsyncConnection, run_id: str) -> RunRecord | None:
    row = (await conn.execute(select(recon_runs).where(recon_runs.c.id == run_id))).mappings()
    found = row.first()
    return _run(found) if found else None


async def discrepancies(
    conn: AsyncConnection,
    *,
    channel: str,
    bill_date: str,
    kind: str | None = None,
    state: str | None = None,
) -> list[Discrepancy]:
    stmt = (
        select(recon_discrepancies)
        .where(_D.channel == channel, _D.bill_date == bill_date)
        .order_by(_D.kind, _D.reference)
    )
    if kind:
        stmt = stmt.where(_D.kind == kind)
    if state:
        stmt = stmt.where(_D.state == state)
    return [discrepancy_of(r) for r in (await conn.execute(stmt)).mappings()]


async def get_discrepancy(conn: AsyncConnection, dsc_id: str) -> Discrepancy | None:
    rows = await conn.execute(select(recon_discrepancies).where(_D.id == dsc_id))
    found = rows.mappings().first()
    return discrepancy_of(found) if found else None


async def open_counts(conn: AsyncConnection) -> dict[tuple[str, str, str], int]:
    """(channel, kind, severity) -> open discrepancies, for the alert gauge."""
    rows = await conn.execute(
        select(_D.channel, _D.kind, _D.severity, func.count())
        .where(_D.state == DiscrepancyState.open.value)
        .group_by(_D.channel, _D.kind, _D.severity)
    )
    return {(c, k, s): int(n) for c, k, s, n in rows.all()}


# --- the daily job's replica-safe claim ---------------------------------------------------


def claim_job(conn: Connection, job: str, day: str, *, who: str, now: datetime) -> bool:
    """True for exactly one caller per (job, day), whichever replica asks first: the
    primary key is the lock, so it holds across processes and machines."""
    dialect_insert = sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert
    stmt = (
        dialect_insert(scheduled_jobs)
        .values(job=job, day=day, claimed_by=who, claimed_at=now)
        .on_conflict_do_nothing(index_elements=["job", "day"])
    )
    return conn.execute(stmt).rowcount == 1


def finish_job(conn: Connection, job: str, day: str, *, now: datetime) -> None:
    conn.execute(
        update(scheduled_jobs)
        .where(scheduled_jobs.c.job == job, scheduled_jobs.c.day == day)
        .values(finished_at=now)
    )
