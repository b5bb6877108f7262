"""Keeps the benchmark harness from rotting: a tiny run, SQLite only, no prefill.

It asserts that the harness measured something sane, never how fast anything was.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.loadgen import Load, percentile, wrk_script

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench")
    argv = [sys.executable, "-m", "bench.run", "--seconds", "1", "--warmup", "0"]
    argv += ["--concurrency", "2", "--databases", "sqlite", "--prefill", "0"]
    argv += ["--generator", "python", "--out", str(out), "--reconcile-lines", "200"]
    done = subprocess.run(argv, check=False, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "latest.md").read_text().count("| new transfer | sqlite | 2 |") == 1
    result: dict[str, Any] = json.loads((out / "latest.json").read_text())
    return result


def _point(report: dict[str, Any], scenario: str) -> dict[str, Any]:
    found = [p for p in report["points"] if p["scenario"] == scenario]
    assert len(found) == 1, [p["scenario"] for p in report["points"]]
    return found[0]


@pytest.mark.parametrize(
    "scenario",
    ["generator ceiling", "floor", "new transfer", "idempotent replay", "GET /v1/transfers/{id}"],
)
def test_every_scenario_completed_requests_without_errors(
    report: dict[str, Any], scenario: str
) -> None:
    point = _point(report, scenario)
    assert point["ok"] > 0 and point["errors"] == 0
    assert point["rps"] > 0
    assert 0 < point["p50_ms"] <= point["p95_ms"] <= point["p99_ms"]


def test_new_transfer_costs_come_from_the_gateway_counters(report: dict[str, Any]) -> None:
    cost = _point(report, "new transfer")["per_request"]
    assert cost["counted_units"] > 0
    assert cost["channel_calls"] == 1.0  # one send per transfer, never a second
    assert cost["sql_transactions"] >= 2  # hold, then the outcome
    assert cost["sql_statements"] > cost["sql_transactions"]
    assert cost["redis_round_trips"] >= 1


def test_replays_touch_neither_database_nor_channel(report: dict[str, Any]) -> None:
    cost = _point(report, "idempotent replay")["per_request"]
    assert cost["channel_calls"] == 0
    assert cost["sql_transactions"] < 0.1  # only an auth-cache refill may read the DB
    assert cost["redis_round_trips"] == pytest.approx(1, abs=0.1)


def test_report_names_the_machine_and_summarises_targets(report: dict[str, Any]) -> None:
    assert report["machine"]["nproc"] >= 1
    assert report["generator"] == "python-aiohttp"
    summary = report["summary"]["sqlite"]
    assert summary["at_c"] == 2  # c=50 was not run: the summary says which c it used
    assert summary["throughput_ratio_c50"] > 0
    assert set(summary["targets"]) >= {"<= 2 Redis round trips", "<= 2 DB transactions"}


def test_wrk_script_sends_a_fresh_key_per_request() -> None:
    script = wrk_script(Load(url="http://x/", method="POST", body=b"{}", key_mode="fresh"))
    assert 'base["Idempotency-Key"] = run .. "-" .. tid .. "-" .. n' in script
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 99) == 4.0


def test_reconciliation_point_matched_the_day_and_found_its_drift(report: dict[str, Any]) -> None:
    point = report["reconciliation"]
    assert point["lines"] == point["statement_lines"] == 205  # 100 transfers x 2 + 5 ghosts
    assert point["found"] == {
        "missing_in_paymux": 5,
        "missing_in_statement": 5,
        "amount_mismatch": 5,
    }
    assert point["seconds"] > 0 and point["peak_rss_mib"] > 0


def test_floor_and_gateway_run_in_interleaved_pairs(report: dict[str, Any]) -> None:
    assert report["config"]["pairs"] == 3
    assert len(_point(report, "floor")["runs"]) == len(_point(report, "new transfer")["runs"]) == 3
    compared = [c for c in report["comparisons"] if c["measured"] == "new transfer"]
    assert len(compared) == 1 and compared[0]["reference"] == "floor"
    pair = compared[0]
    assert pair["pairs"] == 3 and len(pair["ratios"]) == 3
    assert pair["ratio_min"] <= pair["ratio_median"] <= pair["ratio_max"]
    assert report["summary"]["sqlite"]["throughput_ratio_c50"] == pair["ratio_median"]
    reads = [c for c in report["comparisons"] if c["measured"] == "GET /v1/transfers/{id}"]
    assert reads and reads[0]["reference"] == "idempotent replay"


def test_cpu_per_request_is_read_for_each_process(report: dict[str, Any]) -> None:
    gateway = _point(report, "new transfer")["cpu_ms_per_unit"]
    floor = _point(report, "floor")["cpu_ms_per_unit"]
    assert gateway["gateway"] > 0 and gateway["alipay sandbox"] > 0
    assert floor["floor"] > 0 and floor["alipay sandbox"] > 0 and "gateway" not in floor
    assert gateway["all of the above"] >= gateway["gateway"]
