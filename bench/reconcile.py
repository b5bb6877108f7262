"""Reconciliation point: match one statement day of N lines against the database.

Setup (not measured): a fresh SQLite database at the current schema, N/2 succeeded Alipay
transfers completed on one business day, and that day's Alipay signcustomer bill
(``csv.zip``, GBK) with a payment and a fee line per transfer, plus a little drift (amount
changes, ghost orders, transfers missing from the file). The match then runs in a fresh
process, the way ``POST /v1/reconciliation/runs`` runs it (stream the file, look
references up in chunks, page through the day's transfers), and reports its wall time and
the process's peak RSS.

Run: ``python -m bench.reconcile --lines 100000`` (``make bench`` runs it too).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from paymux_alipay.statements import BillRow, build_bill_zip, iter_bill
from sqlalchemy import create_engine, insert

from paymux.service.bootstrap import resolve_keks
from paymux.service.gateway import Gateway
from paymux.service.reconciliation import run_reconciliation
from paymux.settings import Settings
from paymux.store.data_keys_repo import load_data_keys
from paymux.store.db import Database
from paymux.store.migrate import upgrade
from paymux.store.tables import merchants, transfers

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = date(2030, 1, 15)
AMOUNT, COST = 10_000, 10
DRIFT = 5  # of each kind: amount changes, ghost orders, transfers missing from the file


def _setup(root: Path, lines: int) -> dict[str, Any]:
    url = f"sqlite+aiosqlite:///{root / 'paymux.db'}"

    async def migrate() -> None:
        db = Database(url)
        try:
            await upgrade(db.engine)
            # Payee columns are sealed at rest: load (create) the data key first.
            keks = resolve_keks(Settings(data_dir=root, database_url=url))
            await load_data_keys(db, keks, datetime.now(SHANGHAI))
        finally:
            await db.dispose()

    asyncio.run(migrate())
    engine = create_engine(f"sqlite:///{root / 'paymux.db'}")
    count = lines // 2
    start = datetime.combine(DAY, datetime.min.time(), SHANGHAI)
    step = timedelta(days=1) / (count + DRIFT + 1)
    refs = [f"RB{n:010d}" for n in range(count + DRIFT)]
    with engine.begin() as conn:
        conn.execute(
            insert(merchants).values(
                id="mer_bench", name="bench", key_hash="0" * 64, key_hint="x", active=True,
                created_at=start,
            )
        )  # fmt: skip
        batch: list[dict[str, Any]] = []
        for n, ref in enumerate(refs):
            at = start + step * (n + 1)
            batch.append(
                {
                    "id": f"tr_bench{n:010d}", "merchant_id": "mer_bench",
                    "idempotency_key": ref, "request_fingerprint": ref,
                    "status": "succeeded", "amount": AMOUNT, "currency": "CNY", "fee": 60,
                    "channel_cost": COST, "payee_type": "alipay_account",
                    "payee_account": "bench@example.com", "channel": "alipay",
                    "channel_reference": ref, "created_at": at, "updated_at": at,
                    "completed_at": at, "sync_attempts": 0,
                }
            )  # fmt: skip
            if len(batch) == 10_000:
                conn.execute(insert(transfers), batch)
                batch = []
        if batch:
            conn.execute(insert(transfers), batch)
    engine.dispose()

    def rows() -> Any:
        balance = 10**12
        for n, ref in enumerate(refs[:count]):  # the last DRIFT transfers are not in the file
            at = (start + step * (n + 1)).strftime("%Y-%m-%d %H:%M:%S")
            paid = AMOUNT + (1 if n < DRIFT else 0)  # the first DRIFT: amount changed
            balance -= paid
            yield BillRow(f"F{n}a", f"O{n}", ref, "转账", at, "b***om", 0, paid, balance, "转账")
            balance -= COST
            yield BillRow(f"F{n}b", f"O{n}", ref, "转账手续费", at, "", 0, COST, balance, "收费")
        for g in range(DRIFT):
            balance -= 777
            yield BillRow(
                f"G{g}", f"GO{g}", f"GHOST{g}", "转账", f"{DAY} 23:59:59", "g***om", 0, 777,
                balance, "转账",
            )  # fmt: skip

    bill = root / "bill.csv.zip"
    bill.write_bytes(
        build_bill_zip(
            "2088000000000001", DAY.isoformat(), (DAY + timedelta(days=1)).isoformat(), rows(),
            f"{DAY + timedelta(days=1)} 09:00:00",
        )
    )  # fmt: skip
    return {"transfers": len(refs), "statement_lines": 2 * count + DRIFT, "url": url}


class FileStatements:
    """An Alipay channel whose statement is a file on disk (the download is not measured)."""

    name = "alipay"
    account_id = "2021000000000001"

    def __init__(self, bill: Path) -> None:
        self.bill = bill

    async def download_statement(self, bill_date: str, dest_dir: Path) -> Path:
        def copy() -> Path:
            dest_dir.mkdir(parents=True, exist_ok=True)
            return Path(shutil.copy(self.bill, dest_dir / self.bill.name))

        return await asyncio.to_thread(copy)

    def iter_statement(self, path: Path) -> Any:
        return iter_bill(path)

    async def query(self, order: Any) -> Any:  # never reached: the drift has no status kind
        raise AssertionError("no status mismatch in the bench day")


def _match(root: Path) -> dict[str, Any]:
    url = f"sqlite+aiosqlite:///{root / 'paymux.db'}"

    async def run() -> dict[str, Any]:
        db = Database(url)
        gw = Gateway(
            settings=Settings(data_dir=root, database_url=url),
            db=db,
            redis=None,  # type: ignore[arg-type]
            idempotency=None,  # type: ignore[arg-type]
            channels={"alipay": FileStatements(root / "bill.csv.zip")},  # type: ignore[dict-item]
            feebook=None,  # type: ignore[arg-type]
        )
        try:
            t0, cpu0 = time.perf_counter(), time.process_time()
            result = await run_reconciliation(gw, "alipay", DAY, trigger="bench")
            seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        finally:
            await db.dispose()
        summary = json.loads(result.run.summary)
        return {
            "seconds": round(seconds, 2),
            "cpu_seconds": round(cpu, 2),
            "found": {k: v for k, v in summary["found"].items() if v},
            "statement_lines": summary["statement"]["lines"],
        }

    out = asyncio.run(run())
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def run_point(lines: int) -> dict[str, Any]:
    """Set up, then match in a fresh process; the reconciliation point of the report."""
    root = Path(tempfile.mkdtemp(prefix="paymux-bench-recon-"))
    try:
        t0 = time.perf_counter()
        setup = _setup(root, lines)
        setup_seconds = time.perf_counter() - t0
        done = subprocess.run(
            [sys.executable, "-m", "bench.reconcile", "--phase", "match", "--root", str(root)],
            capture_output=True,
            text=True,
            check=False,
            timeout=1800,
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-3000:])
        measured: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "scenario": "reconciliation",
        "database": "sqlite",
        "lines": setup["statement_lines"],
        "transfers": setup["transfers"],
        "setup_seconds": round(setup_seconds, 1),
        **measured,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reconcile", description=__doc__)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--phase", choices=["all", "match"], default="all")
    parser.add_argument("--root", type=Path)
    args = parser.parse_args(argv)
    if args.phase == "match":
        print(json.dumps(_match(args.root)))
        return 0
    print(json.dumps(run_point(args.lines), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
