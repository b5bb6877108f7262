"""`make bench`: Paymux against its floor, same machine, same run.

Starts Redis, both sandboxes (no latency, no faults), the floor (bench/floor.py) and the
gateway per database, drives load with bench/loadgen.py, reads the gateway's own cost
counters from GET /internal/stats, and writes bench/results/latest.json and latest.md.

    python -m bench.run [--seconds 8] [--concurrency 1,10,50,200] [--databases sqlite,postgres]
                        [--prefill 1000000] [--workers 1] [--generator auto|wrk|python]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.loadgen import Load, drive, find_wrk
from bench.prefill import needed_funds, prefill
from paymux.devstack import Stack, free_port, wait_http
from paymux.redis_embedded import EmbeddedRedis

RESULTS = Path(__file__).resolve().parent / "results"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BENCH_DB = "paymux_bench"
TRANSFER_BODY = {
    "amount": 100,
    "currency": "CNY",
    "payee": {"type": "alipay_account", "account": "bench@example.com", "name": "Bench"},
    "channel": "alipay",
    "description": "bench",
}
COUNTERS = ("sql_statements", "sql_transactions", "redis_round_trips", "channel_calls")


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as fh:
        model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "")
    with open("/proc/meminfo") as fh:
        mem_kb = int(next(ln.split()[1] for ln in fh if ln.startswith("MemTotal")))
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


# --- PostgreSQL bench database -------------------------------------------------------------


async def _recreate_pg_db() -> None:
    import asyncpg  # type: ignore[import-untyped]  # noqa: PLC0415

    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=3)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{PG_BENCH_DB}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{PG_BENCH_DB}"')
    finally:
        await conn.close()


def postgres_url() -> tuple[str | None, str]:
    """A fresh bench database (never `test`, CI's), or None and the reason."""
    try:
        asyncio.run(_recreate_pg_db())
    except Exception as exc:
        return None, f"PostgreSQL unreachable at 127.0.0.1:5432 ({type(exc).__name__}): skipped"
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{PG_BENCH_DB}", ""


# --- the stack -----------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, root: Path, redis_url: str) -> None:
        self.args = args
        self.root = root
        self.redis_url = redis_url
        self.dead_port = free_port()  # sandbox notifications go nowhere, for both servers
        self.points: list[dict[str, Any]] = []
        # Replays, reads and the big-DB run use the headline concurrency.
        self.headline = 50 if 50 in args.concurrency else max(args.concurrency)

    @contextmanager
    def stack(self, db: str, url: str) -> Iterator[Stack]:
        data = self.root / db
        sandbox = ["--latency-ms", "0", "--fault-rate", "0", "--notify-schedule", "0"]
        stack = Stack(
            data_dir=data,
            database_url=url,
            redis_url=self.redis_url,
            gateway_port=free_port(),
            sandbox_ports={"alipay": free_port(), "wechat": free_port()},
            sandbox_args={
                "alipay": sandbox,
                "wechat": [*sandbox, "--confirmation", "preauthorized"],
            },
            gateway_env={
                "PAYMUX_LOG_LEVEL": "warning",
                # The daily close is not the transfer path (it has its own point).
                "PAYMUX_RECONCILIATION_ENABLED": "false",
                # The benchmark measures throughput, not the per-key rate limit.
                "PAYMUX_RATE_LIMIT_PER_SECOND": "1000000",
                "PAYMUX_RATE_LIMIT_BURST": "1000000",
                "PAYMUX_PUBLIC_URL": f"http://127.0.0.1:{self.dead_port}",
                "PAYMUX_WORKERS": str(self.args.workers),
                **dict(kv.split("=", 1) for kv in self.args.gateway_env),
            },
            admin_key="ak_bench_" + uuid.uuid4().hex,
            quiet=True,
        )
        floor_port = free_port()
        try:
            stack.start_sandboxes()
            floor = stack._popen(
                "floor",
                [
                    sys.executable, "-m", "bench.floor", "--port", str(floor_port),
                    "--redis-url", self.redis_url,
                    "--alipay-url", stack.sandbox_url("alipay"),
                    "--alipay-data-dir", str(data / "sandbox" / "alipay"),
                    "--notify-url", f"http://127.0.0.1:{self.dead_port}/callbacks/alipay",
                ],
            )  # fmt: skip
            wait_http(f"http://127.0.0.1:{floor_port}/healthz", proc=floor)
            stack.start_gateway()
            stack.wait_gateway(timeout=120)
            self.floor_url = f"http://127.0.0.1:{floor_port}"
            yield stack
        finally:
            stack.stop_all()

    # --- counters --------------------------------------------------------------------------

    def stats(self, stack: Stack) -> dict[int, dict[str, int]]:
        """One snapshot per gateway process (new connections spread over the workers)."""
        seen: dict[int, dict[str, int]] = {}
        headers = {"Authorization": f"Bearer {stack.admin_key}", "Connection": "close"}
        for _ in range(60 if self.args.workers > 1 else 1):
            snap = httpx.get(f"{stack.gateway_url}/internal/stats", headers=headers).json()
            seen[snap["pid"]] = snap
            if len(seen) >= self.args.workers:
                break
        return seen

    @staticmethod
    def per_unit(
        before: dict[int, dict[str, int]], after: dict[int, dict[str, int]], units: int | None
    ) -> dict[str, Any]:
        delta = {k: 0 for k in (*COUNTERS, "transfers_created")}
        for pid, snap in after.items():
            base = before.get(pid, {})
            for k in delta:
                delta[k] += snap[k] - base.get(k, 0)
        n = units if units is not None else delta["transfers_created"]
        out: dict[str, Any] = {"counted_units": n}
        for k in COUNTERS:
            out[k] = round(delta[k] / n, 3) if n else None
        return out

    # --- one measured point ----------------------------------------------------------------

    def point(
        self, name: str, db: str, load: Load, *, stack: Stack | None = None, per: str = "transfer"
    ) -> dict[str, Any]:
        if self.args.warmup > 0:
            drive(Load(**{**load.__dict__, "seconds": self.args.warmup}), self.args.generator)
        before = self.stats(stack) if stack else {}
        result = drive(load, self.args.generator)
        row: dict[str, Any] = {"scenario": name, "database": db, "c": load.concurrency, **result}
        if stack is not None:
            time.sleep(0.5)  # let requests still in flight at the deadline finish
            units = None if per == "transfer" else result["ok"]
            row["per_request"] = self.per_unit(before, self.stats(stack), units)
        self.points.append(row)
        print(
            f"  {name:<24} {db:<9} c={load.concurrency:<4} {row['rps']:>9.1f} req/s"
            f"  p50 {row['p50_ms']:.2f}  p95 {row['p95_ms']:.2f}  p99 {row['p99_ms']:.2f} ms"
            f"  errors {row['errors']}  {row.get('per_request', '')}",
            flush=True,
        )
        return row

    # --- scenarios -------------------------------------------------------------------------

    def merchant(self, stack: Stack, funds: int) -> tuple[str, str]:
        admin = httpx.Client(
            base_url=stack.gateway_url,
            timeout=60,
            headers={"Authorization": f"Bearer {stack.admin_key}"},
        )
        with admin:
            made = admin.post("/v1/merchants", json={"name": "Bench merchant"})
            made.raise_for_status()
            body = made.json()
            chunk = 10**12
            while funds > 0:
                topup = admin.post(
                    f"/v1/merchants/{body['id']}/topups",
                    json={"amount": min(funds, chunk), "currency": "CNY"},
                    headers={"Idempotency-Key": uuid.uuid4().hex},
                )
                topup.raise_for_status()
                funds -= chunk
        return str(body["id"]), str(body["secret_key"])

    def run_database(self, db: str, url: str, first: bool) -> None:
        args = self.args
        body = orjson.dumps(TRANSFER_BODY)
        json_headers = {"Content-Type": "application/json"}
        with self.stack(db, url) as stack:
            funds = 10**11 + needed_funds(args.prefill)
            merchant_id, secret = self.merchant(stack, funds)
            auth = {**json_headers, "Authorization": f"Bearer {secret}"}
            new = Load(
                url=f"{stack.gateway_url}/v1/transfers", method="POST", body=body,
                headers=auth, key_mode="fresh", seconds=args.seconds,
            )  # fmt: skip
            floor = Load(
                url=f"{self.floor_url}/transfer", method="POST", body=body,
                headers=json_headers, seconds=args.seconds,
            )  # fmt: skip
            if first:
                top = max(args.concurrency)
                self.point(
                    "generator ceiling",
                    "-",
                    Load(url=f"{self.floor_url}/healthz", concurrency=top, seconds=args.seconds),
                )
            for c in args.concurrency:
                if first or c == 50:
                    self.point("floor", db, Load(**{**floor.__dict__, "concurrency": c}))
                self.point(
                    "new transfer", db, Load(**{**new.__dict__, "concurrency": c}), stack=stack
                )
            if first and not args.quick:
                self.replays_and_reads(stack, auth, body, db)
            if args.prefill:
                t0 = time.perf_counter()
                prefill(url, merchant_id, args.prefill)
                took = round(time.perf_counter() - t0, 1)
                print(f"  prefilled {args.prefill} transfers in {took} s", flush=True)
                row = self.point(
                    f"new transfer, {args.prefill // 1000}k rows",
                    db,
                    Load(**{**new.__dict__, "concurrency": self.headline}),
                    stack=stack,
                )
                row["prefill_seconds"] = took
                if not args.quick:
                    self.replays_and_reads(stack, auth, body, db, suffix=", big DB")

    def replays_and_reads(
        self, stack: Stack, auth: dict[str, str], body: bytes, db: str, suffix: str = ""
    ) -> None:
        key = "bench-replay-" + uuid.uuid4().hex
        with httpx.Client(base_url=stack.gateway_url, headers=auth, timeout=30) as client:
            made = client.post("/v1/transfers", content=body, headers={"Idempotency-Key": key})
            made.raise_for_status()
            transfer_id = made.json()["id"]
        self.point(
            "idempotent replay" + suffix,
            db,
            Load(
                url=f"{stack.gateway_url}/v1/transfers", method="POST", body=body,
                headers=auth, key_mode="fixed", fixed_key=key, concurrency=self.headline,
                seconds=self.args.seconds,
            ),
            stack=stack,
            per="request",
        )  # fmt: skip
        read_headers = {"Authorization": auth["Authorization"]}
        self.point(
            "GET /v1/transfers/{id}" + suffix,
            db,
            Load(
                url=f"{stack.gateway_url}/v1/transfers/{transfer_id}", headers=read_headers,
                concurrency=self.headline, seconds=self.args.seconds,
            ),
            stack=stack,
            per="request",
        )  # fmt: skip


# --- summary and tables --------------------------------------------------------------------


def _find(points: list[dict[str, Any]], scenario: str, db: str, c: int) -> dict[str, Any] | None:
    return next(
        (p for p in points if p["scenario"] == scenario and p["database"] in (db, "-")
         and p["c"] == c), None,
    )  # fmt: skip


def summarize(points: list[dict[str, Any]], databases: list[str], prefill_n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    floor_db = databases[0] if databases else "sqlite"
    measured = sorted({p["c"] for p in points if p["scenario"] == "new transfer"})
    at = 50 if 50 in measured or not measured else measured[-1]  # the headline is c=50
    for db in databases:
        new = _find(points, "new transfer", db, at)
        floor = _find(points, "floor", db, at) or _find(points, "floor", floor_db, at)
        if not new or not floor:
            continue
        s: dict[str, Any] = {
            "at_c": at,
            "throughput_ratio_c50": round(new["rps"] / floor["rps"], 3) if floor["rps"] else None,
            "p99_ratio_c50": round(new["p99_ms"] / floor["p99_ms"], 3) if floor["p99_ms"] else None,
        }
        replay = _find(points, "idempotent replay", db, 50) or _find(
            points, "idempotent replay", db, at
        )
        if replay and new["rps"]:
            s["replay_vs_new"] = round(replay["rps"] / new["rps"], 2)
        big = _find(points, f"new transfer, {prefill_n // 1000}k rows", db, at)
        if big and new["rps"]:
            s["big_db_vs_empty"] = round(big["rps"] / new["rps"], 3)
        cost = new.get("per_request") or {}
        s["per_transfer"] = {k: cost.get(k) for k in COUNTERS}
        s["targets"] = {
            "throughput >= 0.6x floor": s["throughput_ratio_c50"] is not None
            and s["throughput_ratio_c50"] >= 0.6,
            "p99 <= 2x floor": s["p99_ratio_c50"] is not None and s["p99_ratio_c50"] <= 2,
            "replay >= 3x new": s.get("replay_vs_new", 0) >= 3 if "replay_vs_new" in s else None,
            "1M rows within 10%": abs(1 - s["big_db_vs_empty"]) <= 0.10
            if "big_db_vs_empty" in s
            else None,
            "<= 2 Redis round trips": (cost.get("redis_round_trips") or 99) <= 2,
            "<= 2 DB transactions": (cost.get("sql_transactions") or 99) <= 2,
        }
        out[db] = s
    return out


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Run {report['started_at']} on {report['machine']['nproc']} x "
        f"{report['machine']['cpu']}, {report['machine']['memory_gib']} GiB; generator "
        f"{report['generator']}, {report['config']['seconds']} s per point, gateway workers "
        f"{report['config']['workers']}.",
        "",
        "| scenario | db | c | req/s | p50 ms | p95 ms | p99 ms | errors "
        "| SQL stmts | SQL tx | Redis RT | channel calls |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in report["points"]:
        cost = p.get("per_request") or {}
        cells = [str(cost.get(k, "")) if cost.get(k) is not None else "" for k in COUNTERS]
        lines.append(
            f"| {p['scenario']} | {p['database']} | {p['c']} | {p['rps']:.1f} | "
            f"{p['p50_ms']:.2f} | {p['p95_ms']:.2f} | {p['p99_ms']:.2f} | {p['errors']} | "
            + " | ".join(cells)
            + " |"
        )
    lines += ["", "Counters are per request (per new transfer for `new transfer` rows).", ""]
    recon = report.get("reconciliation")
    if recon:
        lines += [
            f"- **reconciliation** ({recon['database']}): {recon['lines']} statement lines "
            f"matched against {recon['transfers']} transfers in {recon['seconds']} s, peak RSS "
            f"{recon['peak_rss_mib']} MiB (target: < 30 s)",
            "",
        ]
    for db, s in report["summary"].items():
        lines.append(
            f"- **{db}** at c={s['at_c']}: throughput {s['throughput_ratio_c50']} x floor, p99 "
            f"{s['p99_ratio_c50']} x floor"
            + (f", replays {s['replay_vs_new']} x new" if "replay_vs_new" in s else "")
            + (f", 1M rows {s['big_db_vs_empty']} x empty" if "big_db_vs_empty" in s else "")
        )
        for target, ok in s["targets"].items():
            mark = "n/a" if ok is None else ("met" if ok else "MISSED")
            lines.append(f"  - {target}: {mark}")
    for note in report["notes"]:
        lines.append(f"- note: {note}")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per point")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument("--concurrency", default="1,10,50,200")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--prefill", type=int, default=1_000_000, help="0 skips the big-DB run")
    parser.add_argument("--workers", type=int, default=1, help="gateway worker processes")
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--quick", action="store_true", help="skip replay and GET scenarios")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--gateway-env", action="append", default=[], help="KEY=VALUE")
    parser.add_argument(
        "--reconcile-lines", type=int, default=100_000, help="statement lines; 0 skips the point"
    )
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in str(args.concurrency).split(",")]
    args.databases = [d for d in str(args.databases).split(",") if d]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.strftime("%Y-%m-%d %H:%M:%S %z")
    wrk = find_wrk(args.generator)
    generator = "wrk" if wrk else "python-aiohttp"
    notes: list[str] = []
    if wrk is None:
        notes.append("wrk not on PATH: the async Python generator drove the load")
    root = Path(tempfile.mkdtemp(prefix="paymux-bench-"))
    redis = EmbeddedRedis(root / "redis")
    bench = Bench(args, root, redis.start())
    t0 = time.perf_counter()
    try:
        first = True
        for db in args.databases:
            if db == "sqlite":
                url: str | None = f"sqlite+aiosqlite:///{root / 'paymux.db'}"
            elif db == "postgres":
                url, why = postgres_url()
                if url is None:
                    notes.append(why)
                    print(f"  {why}", flush=True)
                    continue
            else:
                raise SystemExit(f"unknown database {db!r}")
            print(f"== {db}", flush=True)
            assert url is not None
            bench.run_database(db, url, first)
            first = False
    finally:
        redis.stop()
        shutil.rmtree(root, ignore_errors=True)
    reconciliation = None
    if args.reconcile_lines:
        from bench.reconcile import run_point  # noqa: PLC0415 - its own point, own line

        print(f"== reconciliation ({args.reconcile_lines} statement lines)", flush=True)
        reconciliation = run_point(args.reconcile_lines)
    report = {
        "started_at": started,
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "machine": machine(),
        "generator": generator,
        "config": {
            "seconds": args.seconds,
            "warmup": args.warmup,
            "concurrency": args.concurrency,
            "databases": args.databases,
            "prefill": args.prefill,
            "workers": args.workers,
            "gateway_env": args.gateway_env,
        },
        "points": bench.points,
        "summary": summarize(bench.points, args.databases, args.prefill),
        "notes": notes,
        "reconciliation": reconciliation,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (args.out / "latest.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
