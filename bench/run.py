"""`make bench`: Paymux against its floor, same machine, same run.

Starts Redis, both sandboxes (no latency, no faults), the floor (bench/floor.py) and the
gateway per database, drives load with bench/loadgen.py, reads the gateway's own cost
counters from GET /internal/stats, and writes bench/results/latest.json and latest.md.

    python -m bench.run [--seconds 5] [--pairs 3] [--concurrency 1,10,50,200]
                        [--databases sqlite,postgres]
                        [--prefill 1000000] [--workers 1] [--generator auto|wrk|python]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import statistics
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

from bench import cpu
from bench.cpu import Meter
from bench.loadgen import Load, drive, find_wrk
from bench.prefill import needed_funds, prefill
from paymux.devstack import Stack, free_port, wait_http
from paymux.redis_embedded import EmbeddedRedis

RESULTS = Path(__file__).resolve().parent / "results"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# Dropped and re-created each run: two benches on one server need different names.
PG_BENCH_DB = os.environ.get("PAYMUX_BENCH_PG_DATABASE", "paymux_bench")
TRANSFER_BODY = {
    "amount": 100,
    "currency": "CNY",
    "payee": {"type": "alipay_account", "account": "bench@example.com", "name": "Bench"},
    "channel": "alipay",
    "description": "bench",
}
# SQL transactions are atomic units of work; on SQLite a group commit holds several of
# them in one COMMIT (store/group_commit.py), hence the separate count of commits.
COUNTERS = (
    "sql_statements",
    "sql_transactions",
    "sql_commits",
    "redis_round_trips",
    "channel_calls",
)


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
    def __init__(
        self, args: argparse.Namespace, root: Path, redis_url: str, redis_pid: int | None
    ) -> None:
        self.args = args
        self.root = root
        self.redis_url = redis_url
        self.redis_pid = redis_pid
        self.db = ""
        self.idle_rates: dict[str, float] = {}
        self.comparisons: list[dict[str, Any]] = []
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
            self.floor_proc = floor
            stack.start_gateway()
            stack.wait_gateway(timeout=120 * self.args.workers)  # each worker starts alone
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

    def idle_counter_rates(self, stack: Stack, seconds: float = 3.0) -> dict[str, float]:
        """What the gateway's background loops count per second with no requests at all."""
        before = self.stats(stack)
        t0 = time.perf_counter()
        time.sleep(seconds)
        delta = self.deltas(before, self.stats(stack))
        took = time.perf_counter() - t0
        return {k: v / took for k, v in delta.items()}

    @staticmethod
    def deltas(
        before: dict[int, dict[str, int]], after: dict[int, dict[str, int]]
    ) -> dict[str, int]:
        delta = {k: 0 for k in (*COUNTERS, "transfers_created")}
        for pid, snap in after.items():
            base = before.get(pid, {})
            for k in delta:
                delta[k] += snap[k] - base.get(k, 0)
        return delta

    @staticmethod
    def per_unit(delta: dict[str, int], units: int) -> dict[str, Any]:
        out: dict[str, Any] = {"counted_units": units}
        for k in COUNTERS:
            out[k] = round(delta[k] / units, 3) if units else None
        return out

    def meter(self, stack: Stack, side: str) -> Meter:
        """The processes doing a side's work: the server under test and what it calls."""
        groups: dict[str, cpu.Selector] = {}
        if side == "floor":
            groups["floor"] = cpu.roots(self.floor_proc.pid)
        else:
            groups["gateway"] = cpu.roots(stack.procs["gateway"].pid)
        groups["alipay sandbox"] = cpu.roots(stack.procs["sandbox-alipay"].pid)
        if side != "floor":
            groups["wechat sandbox"] = cpu.roots(stack.procs["sandbox-wechat"].pid)
        groups["redis"] = cpu.roots(self.redis_pid)
        if side != "floor" and self.db == "postgres":
            groups["postgres backends"] = cpu.titled("postgres:", f" {PG_BENCH_DB} ")
            groups["postgres server (shared)"] = cpu.postgres_server(PG_BENCH_DB)
        return Meter(groups)

    # --- one measured run, and interleaved pairs of them -----------------------------------

    def run_once(
        self, load: Load, *, stack: Stack | None, side: str, per: str, warmup: bool
    ) -> dict[str, Any]:
        if warmup and self.args.warmup > 0:
            drive(Load(**{**load.__dict__, "seconds": self.args.warmup}), self.args.generator)
        meter = self.meter(stack, side) if stack is not None and side != "ceiling" else Meter()
        counted = stack if side == "gateway" else None
        before = self.stats(counted) if counted else {}
        t0 = time.perf_counter()
        cpu_before = meter.snapshot()
        gen_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        result = drive(load, self.args.generator)
        gen_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        run: dict[str, Any] = {**result}
        units = result["ok"]
        if counted is not None:
            if per == "transfer":
                # Transfers still in flight at the deadline finish and are counted (by the
                # gateway); replays and reads count only what the generator saw complete.
                time.sleep(0.5)
            delta = self.deltas(before, self.stats(counted))
            if per == "transfer":
                units = delta["transfers_created"]
            else:
                # A replay or a read does no background work, but the gateway's loops (sync,
                # relay, webhooks) poll meanwhile: take off what they do when idle, so a slow
                # run (few requests, same polling) does not look like SQL per request.
                window = time.perf_counter() - t0
                run["background_deltas"] = {
                    k: round(self.idle_rates.get(k, 0.0) * window, 1) for k in delta
                }
                delta = {
                    k: max(0, round(v - run["background_deltas"][k])) for k, v in delta.items()
                }
            run["per_request"] = self.per_unit(delta, units)
            run["counter_deltas"] = delta
        if meter.groups:
            ms = meter.delta_ms(cpu_before, meter.snapshot())
            generator = (
                gen_after.ru_utime + gen_after.ru_stime - gen_before.ru_utime - gen_before.ru_stime
            ) * 1000
            machine_ms = ms.pop("_machine")
            ours = sum(ms.values()) + generator
            ms["load generator"] = generator
            ms["all of the above"] = ours
            ms["rest of the machine"] = max(0.0, machine_ms - ours)
            run["cpu_units"] = units
            run["cpu_ms_total"] = {k: round(v, 1) for k, v in ms.items()}
            run["cpu_ms_per_unit"] = {
                k: round(v / units, 3) if units else None for k, v in ms.items()
            }
        return run

    def point(
        self, name: str, db: str, load: Load, *, stack: Stack | None = None, per: str = "transfer"
    ) -> dict[str, Any]:
        """A single measurement (the generator ceiling): no pair, no CPU."""
        run = self.run_once(load, stack=None, side="ceiling", per=per, warmup=True)
        row = {"scenario": name, "database": db, "c": load.concurrency, **run, "runs": [run]}
        self.points.append(row)
        self.show(row)
        return row

    def pairs(
        self,
        reference: tuple[str, Load, str, str],
        measured: tuple[str, Load, str, str],
        db: str,
        stack: Stack,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Reference, measured, reference, measured, ... ``--pairs`` times, each pair adjacent
        in time, so drifting load from elsewhere on the machine hits both alike; the ratio is
        taken per pair and reported as the median of the pairs with their spread."""
        runs: dict[str, list[dict[str, Any]]] = {reference[0]: [], measured[0]: []}
        for i in range(self.args.pairs):
            for name, load, side, per in (reference, measured):
                run = self.run_once(load, stack=stack, side=side, per=per, warmup=i == 0)
                runs[name].append(run)
                print(f"    pair {i + 1}/{self.args.pairs} {name:<26} {brief(run)}", flush=True)
        rows = []
        for name, load, _side, _per in (reference, measured):
            row = {"scenario": name, "database": db, "c": load.concurrency}
            row.update(aggregate(runs[name]))
            self.points.append(row)
            self.show(row)
            rows.append(row)
        ref, new = runs[reference[0]], runs[measured[0]]
        # A run that completed nothing (every request outlived the run) has no latency
        # figures: its pair counts for throughput (0) but not for the p99 ratio.
        pairs = list(zip(ref, new, strict=True))
        ratios = [n["rps"] / r["rps"] for r, n in pairs if r["ok"]]
        p99s = [n["p99_ms"] / r["p99_ms"] for r, n in pairs if r["ok"] and n["ok"]]
        comparison = {
            "measured": measured[0],
            "reference": reference[0],
            "database": db,
            "c": measured[1].concurrency,
            "pairs": len(ratios),
            **spread(ratios, "ratio"),
            **spread(p99s, "p99_ratio"),
        }
        self.comparisons.append(comparison)
        print(
            f"  => {measured[0]} / {reference[0]} at c={comparison['c']}: "
            f"{comparison['ratio_median']} (range {comparison['ratio_min']}-"
            f"{comparison['ratio_max']}, +/-{comparison['ratio_spread_pct']} %), p99 ratio "
            f"{comparison['p99_ratio_median']}",
            flush=True,
        )
        return rows[0], rows[1]

    @staticmethod
    def show(row: dict[str, Any]) -> None:
        print(f"  {row['scenario']:<26} {row['database']:<9} c={row['c']:<4} {brief(row)}")

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
        self.db = db
        body = orjson.dumps(TRANSFER_BODY)
        json_headers = {"Content-Type": "application/json"}
        with self.stack(db, url) as stack:
            funds = 10**11 + needed_funds(args.prefill)
            merchant_id, secret = self.merchant(stack, funds)
            self.idle_rates = self.idle_counter_rates(stack)
            print(f"  idle gateway, per second: {self.idle_rates}", flush=True)
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
                self.pairs(
                    ("floor", Load(**{**floor.__dict__, "concurrency": c}), "floor", "request"),
                    (
                        "new transfer",
                        Load(**{**new.__dict__, "concurrency": c}),
                        "gateway",
                        "transfer",
                    ),
                    db,
                    stack,
                )
            if not args.quick:
                self.replays_and_reads(stack, auth, body, db)
            if args.prefill:
                t0 = time.perf_counter()
                prefill(url, merchant_id, args.prefill)
                took = round(time.perf_counter() - t0, 1)
                print(f"  prefilled {args.prefill} transfers in {took} s", flush=True)
                c = self.headline
                _floor, row = self.pairs(
                    (
                        f"floor, {args.prefill // 1000}k rows run",
                        Load(**{**floor.__dict__, "concurrency": c}),
                        "floor",
                        "request",
                    ),
                    (
                        f"new transfer, {args.prefill // 1000}k rows",
                        Load(**{**new.__dict__, "concurrency": c}),
                        "gateway",
                        "transfer",
                    ),
                    db,
                    stack,
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
        replay = Load(
            url=f"{stack.gateway_url}/v1/transfers", method="POST", body=body,
            headers=auth, key_mode="fixed", fixed_key=key, concurrency=self.headline,
            seconds=self.args.seconds,
        )  # fmt: skip
        read = Load(
            url=f"{stack.gateway_url}/v1/transfers/{transfer_id}",
            headers={"Authorization": auth["Authorization"]},
            concurrency=self.headline,
            seconds=self.args.seconds,
        )
        # The read's target is relative to the replay (both one lookup, no channel call).
        self.pairs(
            ("idempotent replay" + suffix, replay, "gateway", "request"),
            ("GET /v1/transfers/{id}" + suffix, read, "gateway", "request"),
            db,
            stack,
        )


def brief(row: dict[str, Any]) -> str:
    text = (
        f"{row['rps']:>9.1f} req/s  p50 {row['p50_ms']:.2f}  p95 {row['p95_ms']:.2f}  "
        f"p99 {row['p99_ms']:.2f} ms  errors {row['errors']}"
    )
    cost = row.get("cpu_ms_per_unit") or {}
    if cost:
        text += "  cpu ms/req " + ", ".join(
            f"{k} {v}" for k, v in cost.items() if v is not None and k != "rest of the machine"
        )
    return text


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


def spread(values: list[float], name: str) -> dict[str, Any]:
    """Median of per-pair ratios, their range, and the half-range as a percentage of it."""
    if not values:
        return {f"{name}_median": None}
    mid = median(values)
    half = (max(values) - min(values)) / 2
    return {
        f"{name}_median": round(mid, 3),
        f"{name}_min": round(min(values), 3),
        f"{name}_max": round(max(values), 3),
        f"{name}_spread_pct": round(100 * half / mid, 1) if mid else None,
        f"{name}s": [round(v, 3) for v in values],
    }


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from several runs of the same load: medians of rates, latencies and CPU per
    unit; request counts and counters summed."""
    row: dict[str, Any] = {
        "generator": runs[0].get("generator"),
        "requests": sum(r["requests"] for r in runs),
        "ok": sum(r["ok"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "seconds": round(sum(r["seconds"] for r in runs), 3),
    }
    for k in ("rps", "p50_ms", "p95_ms", "p99_ms"):
        row[k] = round(median([r[k] for r in runs]), 3)
    if all("counter_deltas" in r for r in runs):
        total = {k: sum(r["counter_deltas"][k] for r in runs) for k in runs[0]["counter_deltas"]}
        units = sum(r["per_request"]["counted_units"] for r in runs)
        row["per_request"] = Bench.per_unit(total, units)
    if all("cpu_ms_per_unit" in r for r in runs):
        row["cpu_ms_per_unit"] = {
            k: round(median([r["cpu_ms_per_unit"][k] or 0.0 for r in runs]), 3)
            for k in runs[0]["cpu_ms_per_unit"]
        }
    row["runs"] = runs
    return row


# --- summary and tables --------------------------------------------------------------------


def _find(points: list[dict[str, Any]], scenario: str, db: str, c: int) -> dict[str, Any] | None:
    return next(
        (p for p in points if p["scenario"] == scenario and p["database"] in (db, "-")
         and p["c"] == c), None,
    )  # fmt: skip


def _compared(
    comparisons: list[dict[str, Any]], measured: str, db: str, c: int
) -> dict[str, Any] | None:
    return next(
        (x for x in comparisons if x["measured"] == measured and x["database"] == db
         and x["c"] == c), None,
    )  # fmt: skip


TRUSTED_SPREAD_PCT = 5.0


def summarize(
    points: list[dict[str, Any]],
    comparisons: list[dict[str, Any]],
    databases: list[str],
    prefill_n: int,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    measured = sorted({p["c"] for p in points if p["scenario"] == "new transfer"})
    at = 50 if 50 in measured or not measured else measured[-1]  # the headline is c=50
    for db in databases:
        new = _find(points, "new transfer", db, at)
        vs_floor = _compared(comparisons, "new transfer", db, at)
        if not new or not vs_floor:
            continue
        s: dict[str, Any] = {
            "at_c": at,
            "pairs": vs_floor["pairs"],
            "throughput_ratio_c50": vs_floor["ratio_median"],
            "throughput_ratio_range": [vs_floor.get("ratio_min"), vs_floor.get("ratio_max")],
            "throughput_ratio_spread_pct": vs_floor.get("ratio_spread_pct"),
            "p99_ratio_c50": vs_floor["p99_ratio_median"],
            "p99_ratio_range": [vs_floor.get("p99_ratio_min"), vs_floor.get("p99_ratio_max")],
        }
        spread_pct = vs_floor.get("ratio_spread_pct")
        s["trusted_to_5pct"] = spread_pct is not None and spread_pct <= TRUSTED_SPREAD_PCT
        replay = _find(points, "idempotent replay", db, 50) or _find(
            points, "idempotent replay", db, at
        )
        if replay and new["rps"]:
            s["replay_vs_new"] = round(replay["rps"] / new["rps"], 2)
        reads = _compared(comparisons, "GET /v1/transfers/{id}", db, 50) or _compared(
            comparisons, "GET /v1/transfers/{id}", db, at
        )
        if reads:
            s["get_vs_replay"] = reads["ratio_median"]
            s["get_vs_replay_spread_pct"] = reads.get("ratio_spread_pct")
        big = _compared(comparisons, f"new transfer, {prefill_n // 1000}k rows", db, at)
        if big and big["ratio_median"] and vs_floor["ratio_median"]:
            # Each against its own interleaved floor, so machine load cancels out.
            s["big_db_vs_empty"] = round(big["ratio_median"] / vs_floor["ratio_median"], 3)
        cost = new.get("per_request") or {}
        s["per_transfer"] = {k: cost.get(k) for k in COUNTERS}
        s["cpu_ms_per_transfer"] = new.get("cpu_ms_per_unit")
        floor = _find(points, "floor", db, at)
        if floor:
            s["floor_cpu_ms_per_request"] = floor.get("cpu_ms_per_unit")
        s["targets"] = {
            "throughput >= 0.6x floor": s["throughput_ratio_c50"] is not None
            and s["throughput_ratio_c50"] >= 0.6,
            "p99 <= 2x floor": s["p99_ratio_c50"] <= 2 if s["p99_ratio_c50"] is not None else None,
            "replay >= 3x new": s.get("replay_vs_new", 0) >= 3 if "replay_vs_new" in s else None,
            "GET >= 0.6x replay": s["get_vs_replay"] >= 0.6 if "get_vs_replay" in s else None,
            "1M rows within 10%": abs(1 - s["big_db_vs_empty"]) <= 0.10
            if "big_db_vs_empty" in s
            else None,
            "<= 2 Redis round trips": (cost.get("redis_round_trips") or 99) <= 2,
            "<= 2 DB transactions": (cost.get("sql_transactions") or 99) <= 2,
        }
        out[db] = s
    return out


CPU_GROUPS = (
    "gateway",
    "floor",
    "alipay sandbox",
    "wechat sandbox",
    "redis",
    "postgres backends",
    "postgres server (shared)",
    "load generator",
    "all of the above",
    "rest of the machine",
)


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Run {report['started_at']} on {report['machine']['nproc']} x "
        f"{report['machine']['cpu']}, {report['machine']['memory_gib']} GiB; generator "
        f"{report['generator']}, {report['config']['seconds']} s per run, "
        f"{report['config']['pairs']} interleaved pairs per point, gateway workers "
        f"{report['config']['workers']}.",
        "",
        "### Paired points (median of the pairs; each pair's two runs adjacent in time)",
        "",
        "| measured | against | db | c | pairs | ratio (median) | range | +/- % "
        "| p99 ratio (median) | p99 range |",
        "|---|---|---|---:|---:|---:|---|---:|---:|---|",
    ]
    for x in report["comparisons"]:
        lines.append(
            f"| {x['measured']} | {x['reference']} | {x['database']} | {x['c']} | {x['pairs']} "
            f"| {_cell(x.get('ratio_median'))} | {_cell(x.get('ratio_min'))}-"
            f"{_cell(x.get('ratio_max'))} | {_cell(x.get('ratio_spread_pct'))} "
            f"| {_cell(x.get('p99_ratio_median'))} | {_cell(x.get('p99_ratio_min'))}-"
            f"{_cell(x.get('p99_ratio_max'))} |"
        )
    lines += [
        "",
        "### Every point (medians over its runs)",
        "",
        "| scenario | db | c | req/s | p50 ms | p95 ms | p99 ms | errors "
        "| SQL stmts | SQL tx | SQL commits | Redis RT | channel calls |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
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
    lines += [
        "",
        "Counters are per request (per new transfer for `new transfer` rows, including the "
        "background loops' work meanwhile, e.g. the outbox relay; for replays and reads net "
        "of what those loops count when the gateway is idle).",
        "",
    ]
    with_cpu = [p for p in report["points"] if p.get("cpu_ms_per_unit")]
    if with_cpu:
        groups = [g for g in CPU_GROUPS if any(g in p["cpu_ms_per_unit"] for p in with_cpu)]
        lines += [
            "### CPU ms per request (per new transfer for `new transfer` rows), from /proc",
            "",
            "| db | c | scenario | " + " | ".join(groups) + " |",
            "|---|---:|---|" + "---:|" * len(groups),
        ]
        for p in with_cpu:
            cost = p["cpu_ms_per_unit"]
            lines.append(
                f"| {p['database']} | {p['c']} | {p['scenario']} | "
                + " | ".join(_cell(cost.get(g)) for g in groups)
                + " |"
            )
        lines += [
            "",
            "`rest of the machine` is every other process's CPU in the same window (other "
            "sessions on a shared machine): large values mean the throughput figures are noisy, "
            "the per-process CPU much less so.",
            "",
        ]
    recon = report.get("reconciliation")
    if recon:
        lines += [
            f"- **reconciliation** ({recon['database']}): {recon['lines']} statement lines "
            f"matched against {recon['transfers']} transfers in {recon['seconds']} s, peak RSS "
            f"{recon['peak_rss_mib']} MiB (target: < 30 s)",
            "",
        ]
    for db, s in report["summary"].items():
        trusted = "" if s["trusted_to_5pct"] else " (spread over +/-5 %: not to be trusted)"
        lines.append(
            f"- **{db}** at c={s['at_c']}: throughput {s['throughput_ratio_c50']} x floor "
            f"(median of {s['pairs']} pairs, +/-{s['throughput_ratio_spread_pct']} %{trusted}), "
            f"p99 {s['p99_ratio_c50']} x floor"
            + (f", replays {s['replay_vs_new']} x new" if "replay_vs_new" in s else "")
            + (f", GET {s['get_vs_replay']} x replay" if "get_vs_replay" in s else "")
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
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run")
    parser.add_argument(
        "--pairs", type=int, default=3, help="interleaved reference/measured runs per point"
    )
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
    bench = Bench(args, root, redis.start(), redis.pid)
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
            "pairs": args.pairs,
            "warmup": args.warmup,
            "concurrency": args.concurrency,
            "databases": args.databases,
            "prefill": args.prefill,
            "workers": args.workers,
            "gateway_env": args.gateway_env,
        },
        "points": bench.points,
        "comparisons": bench.comparisons,
        "summary": summarize(bench.points, bench.comparisons, args.databases, args.prefill),
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
