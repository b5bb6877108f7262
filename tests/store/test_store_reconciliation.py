"""Reconciliation runs on the real database with a channel whose statement is a real Alipay
bill file (built with the adapter's own format code): the classes the end-to-end test does
not reach, healing a processing transfer through the state machine, a next-day line
clearing an earlier missing_in_statement, idempotent re-runs, and the daily close's claim."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from paymux_alipay.statements import BillRow, build_bill_zip, iter_bill
from sqlalchemy import delete, insert

from paymux.channels.base import ChannelResult, TransferOrder
from paymux.domain.outcomes import Outcome
from paymux.domain.reconciliation import DiscrepancyState
from paymux.domain.statement_lines import StatementLine
from paymux.service.gateway import Gateway, utcnow
from paymux.service.reconciliation import run_reconciliation
from paymux.service.reconciliation_schedule import run_due_jobs
from paymux.service.transfers import get_transfer
from paymux.store import audit_repo
from paymux.store import reconciliation_repo as repo
from paymux.store.reconciliation_tables import ledger_digest_leaves, ledger_digests
from tests.store.store_support import ALIPAY_ACCOUNT_COST, new_funded_merchant, transfer

SHANGHAI = ZoneInfo("Asia/Shanghai")
D1, D2 = date(2035, 4, 10), date(2035, 4, 11)


@dataclass
class BillChannel:
    """The outside channel: sends answer as scripted, statements are files we write."""

    inner: Any
    bills: dict[str, Path] = field(default_factory=dict)
    answers: dict[str, Outcome] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def send(self, order: TransferOrder) -> ChannelResult:
        return await self.inner.send(order)  # type: ignore[no-any-return]

    async def query(self, order: TransferOrder) -> ChannelResult:
        return ChannelResult(self.answers.get(order.reference, Outcome.PROCESSING))

    async def download_statement(self, bill_date: str, dest_dir: Path) -> Path:
        return _copy(self.bills[bill_date], dest_dir)

    def iter_statement(self, path: Path) -> Iterator[StatementLine]:
        return iter_bill(path)


def _copy(src: Path, dest_dir: Path) -> Path:
    dest_dir.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(src, dest_dir / "bill.csv.zip"))


def write_bill(tmp: Path, day: date, lines: list[tuple[str, int, int]]) -> Path:
    """lines: (reference, paid, fee)."""
    rows, balance = [], 10**9
    for n, (ref, paid, fee) in enumerate(lines):
        at = f"{day} 00:00:{n:02d}"
        balance -= paid
        rows.append(BillRow(f"F{n}", f"O{n}", ref, "转账", at, "a***om", 0, paid, balance, "转账"))
        if fee:
            balance -= fee
            rows.append(BillRow(f"F{n}f", f"O{n}", ref, "手续费", at, "", 0, fee, balance, "收费"))
    path = tmp / f"{day}.csv.zip"
    next_day = str(day + timedelta(days=1))
    exported = f"{next_day} 09:00:00"
    path.write_bytes(build_bill_zip("2088000000000001", str(day), next_day, rows, exported))
    return path


@pytest.fixture
def bill_channel(gw: Gateway) -> Iterator[BillChannel]:
    original = gw.channels["alipay"]
    channel = BillChannel(original)
    gw.channels["alipay"] = channel  # type: ignore[assignment]
    try:
        yield channel
    finally:
        gw.channels["alipay"] = original


def at(day: date, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=SHANGHAI)


async def test_classes_healing_next_day_clearing_and_reruns(
    gw: Gateway, bill_channel: BillChannel, tmp_path: Path
) -> None:
    merchant = await new_funded_merchant(gw, 1_000_000, "recon store")
    try:
        gw.clock = lambda: at(D1, 23, 59, 50)  # completes just before midnight
        late = (await transfer(gw, merchant, 5_000, Outcome.SUCCEEDED)).transfer
        gw.clock = lambda: at(D1, 10, 0)
        pricey = (await transfer(gw, merchant, 6_000, Outcome.SUCCEEDED)).transfer
        open_ = (await transfer(gw, merchant, 7_000, Outcome.PROCESSING)).transfer
    finally:
        gw.clock = utcnow
    cost = ALIPAY_ACCOUNT_COST
    ref = {t.id: t.channel_reference for t in (late, pricey, open_)}

    # D1: the late one is not there (the channel booked it after midnight); the channel
    # charged more than the schedule for another; it paid the one we still see processing.
    bill_channel.bills[str(D1)] = write_bill(
        tmp_path, D1, [(ref[pricey.id], 6_000, cost + 1), (ref[open_.id], 7_000, cost)]
    )
    bill_channel.answers[ref[open_.id]] = Outcome.SUCCEEDED
    first = await run_reconciliation(gw, "alipay", D1)
    found = {(d.kind.value, d.reference, d.state.value) for d in first.discrepancies}
    assert found == {
        ("missing_in_statement", ref[late.id], "open"),
        ("channel_fee_mismatch", ref[pricey.id], "open"),
        ("status_mismatch", ref[open_.id], "resolved"),  # healed by the query
    }
    assert (await get_transfer(gw, open_.id, None)).status == "succeeded"
    # Each newly opened discrepancy is an operator-facing event in the audit log.
    opened_ids = {d.id for d in first.discrepancies if d.state is DiscrepancyState.open}
    audited, _ = await audit_repo.list_events(
        gw.db, audit_repo.AuditFilter(action="reconciliation.discrepancy_opened", limit=500)
    )
    assert opened_ids <= {a["object_id"] for a in audited}

    again = await run_reconciliation(gw, "alipay", D1)
    assert {(d.id, d.state) for d in again.discrepancies} == {
        (d.id, d.state) for d in first.discrepancies
    }

    # D2: the late transfer's line arrives and clears D1's missing_in_statement.
    bill_channel.bills[str(D2)] = write_bill(tmp_path, D2, [(ref[late.id], 5_000, cost)])
    second = await run_reconciliation(gw, "alipay", D2)
    assert second.discrepancies == []
    async with gw.db.read() as conn:
        d1 = await repo.discrepancies(conn, channel="alipay", bill_date=str(D1))
    cleared = next(d for d in d1 if d.kind.value == "missing_in_statement")
    assert cleared.state is DiscrepancyState.resolved
    assert cleared.resolution and str(D2) in cleared.resolution


async def test_the_daily_claim_is_taken_once(gw: Gateway) -> None:
    now = utcnow()

    def claim(who: str) -> Any:
        return lambda conn: repo.claim_job(conn, "reconcile:test", "2035-01-01", who=who, now=now)

    assert await gw.db.run_write(claim("replica-a")) is True
    assert await gw.db.run_write(claim("replica-b")) is False


async def test_the_daily_close_runs_once_per_day(gw: Gateway, bill_channel: BillChannel) -> None:
    day = date(2035, 5, 20)
    bill_channel.bills[str(day)] = write_bill(Path(gw.settings.data_dir), day, [])
    async with gw.db.write() as conn:
        # Seal from ``day`` on only (earlier days belong to other tests' clocks).
        await conn.execute(
            insert(ledger_digests).values(
                day=str(day - timedelta(days=1)), entries=0, merkle_root="0" * 64,
                previous_digest="0" * 64, digest="1" * 64, computed_at=utcnow(),
            )
        )  # fmt: skip
    try:
        gw.clock = lambda: at(day + timedelta(days=1), 10, 29)
        assert await run_due_jobs(gw) == []  # before 10:30: nothing is due
        gw.clock = lambda: at(day + timedelta(days=1), 10, 31)
        assert await run_due_jobs(gw) == ["ledger_digest", "reconcile:alipay"]
        assert await run_due_jobs(gw) == []  # another replica, or the next tick
    finally:
        gw.clock = utcnow
        async with gw.db.write() as conn:
            await conn.execute(delete(ledger_digest_leaves))
            await conn.execute(delete(ledger_digests))
    async with gw.db.read() as conn:
        runs = await repo.list_runs(conn, channel="alipay", limit=500)
    assert [r.trigger for r in runs if r.bill_date == str(day)] == ["schedule"]
