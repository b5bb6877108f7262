"""`paymux serve --workers N`: several worker processes share one port.

On PostgreSQL, three workers each run every background loop (sync loop, outbox relay,
webhook delivery worker, batch worker, daily close); the test sends transfers at them, some
keys twice at once, and checks with the chaos suite's own checks that each key made
exactly one transfer, each reference at most one channel order, every transfer settled,
one event per state change, each delivered once, and the daily close ran once. On SQLite
(one writer) more than one worker is refused.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from paymux.devstack import Stack, free_port, wait_http
from tests.chaos.checks import (
    ChannelOrder,
    Delivery,
    KeyRecord,
    TransferRow,
    check_channel_orders,
    check_keys,
    check_settled,
    check_webhooks,
)
from tests.e2e.conftest import Api, make_stack, new_merchant

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 3
PAYEES = [
    {"type": "alipay_account", "account": "alice@example.com", "name": "Zhang San"},
    {"type": "alipay_account", "account": "delay@example.com", "name": "Zhang San"},
    {"type": "alipay_account", "account": "fail-payee@example.com", "name": "Zhang San"},
    {"type": "wechat_openid", "account": "o4GgauInH_RCEdvrrNGrntXDuXXX", "name": "Zhang San"},
    {"type": "wechat_openid", "account": "o_delay_1", "name": "Zhang San"},
    {"type": "bank_card", "account": "6222020200112233445", "name": "Zhang San"},
]


def test_sqlite_refuses_more_than_one_worker(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PAYMUX_DATA_DIR": str(tmp_path),
        "PAYMUX_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'paymux.db'}",
        "PAYMUX_REDIS_URL": "redis://127.0.0.1:1/0",  # never reached
    }
    run = subprocess.run(
        [sys.executable, "-m", "paymux", "serve", "--workers", "2", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2, run.stderr
    assert "--workers 2 needs PostgreSQL" in run.stderr and "single writer" in run.stderr
    assert not (tmp_path / "paymux.db").exists()  # refused before touching anything


def _worker_pids(stack: Stack) -> set[int]:
    """uvicorn's worker processes under the gateway, from /proc (multiprocessing's
    resource tracker is a child too, not a worker)."""
    parent = stack.procs["gateway"].pid
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"spawn_main" in cmdline:
                pids.add(int(entry.name))
    return pids


def _serving_pids(stack: Stack, want: int, timeout: float = 90) -> set[int]:
    """Worker pids seen answering /internal/stats on fresh connections."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    limits = httpx.Limits(max_keepalive_connections=0)
    headers = {"Authorization": f"Bearer {stack.admin_key}"}
    while len(seen) < want and time.monotonic() < deadline:
        with httpx.Client(base_url=stack.gateway_url, limits=limits, timeout=10) as client:
            resp = client.get("/internal/stats", headers=headers)
            if resp.status_code == 200:
                seen.add(int(resp.json()["pid"]))
    return seen


def _send(api: Api, key: str, body: dict[str, Any]) -> tuple[int, str | None]:
    limits = httpx.Limits(max_keepalive_connections=0)  # spread over the workers
    with httpx.Client(
        base_url=str(api.client.base_url),
        headers=dict(api.client.headers),
        limits=limits,
        timeout=30,
    ) as client:
        for _ in range(20):
            resp = client.post("/v1/transfers", json=body, headers={"Idempotency-Key": key})
            if resp.status_code in (409, 503):  # the twin is in flight: retry like a client
                time.sleep(0.2)
                continue
            tid = resp.json().get("id") if resp.status_code in (200, 201) else None
            return resp.status_code, tid
    return resp.status_code, None


async def _db_rows(url: str, day: str) -> dict[str, Any]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:

            async def rows(sql: str, **params: Any) -> list[Any]:
                return list((await conn.execute(text(sql), params)).all())

            return {
                "busy": (
                    await rows(
                        "SELECT COUNT(*) FROM transfers WHERE status IN"
                        " ('pending', 'processing', 'requires_confirmation')"
                    )
                )[0][0],
                "unrelayed": (await rows("SELECT COUNT(*) FROM events WHERE relayed_at IS NULL"))[
                    0
                ][0],
                "undelivered": (
                    await rows("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'")
                )[0][0],
                "transfers": await rows(
                    "SELECT id, merchant_id, idempotency_key, status, amount, fee,"
                    " channel, channel_reference FROM transfers"
                ),
                "events": await rows("SELECT id, type, object_id FROM events ORDER BY id"),
                "jobs": await rows(
                    "SELECT job, claimed_by, finished_at FROM scheduled_jobs WHERE day = :d",
                    d=day,
                ),
            }
    finally:
        await engine.dispose()


def _sandbox_orders(stack: Stack) -> list[ChannelOrder]:
    out = []
    for o in httpx.get(f"{stack.sandbox_url('alipay')}/__sandbox/orders", timeout=30).json():
        fen = int(Decimal(str(o["trans_amount"])) * 100)
        out.append(ChannelOrder("alipay", o["out_biz_no"], fen, o["status"]))
    for o in httpx.get(f"{stack.sandbox_url('wechat')}/__sandbox/orders", timeout=30).json():
        out.append(ChannelOrder("wechat", o["out_bill_no"], int(o["transfer_amount"]), o["state"]))
    return out


@pytest.mark.skipif(
    not os.environ.get("PAYMUX_TEST_DATABASE_URL"),
    reason="several workers need PostgreSQL: runs in the PostgreSQL pass (SQLite refuses them)",
)
def test_three_workers_on_postgresql_move_each_transfer_once(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> None:
    tmp = tmp_path_factory.mktemp("workers")
    hook_port = free_port()
    deliveries_file = tmp / "deliveries.jsonl"
    argv = [sys.executable, "-m", "tests.chaos.receiver"]
    receiver = subprocess.Popen(
        [*argv, "--port", str(hook_port), "--out", str(deliveries_file)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stack = make_stack(
        tmp,
        redis_url,
        PAYMUX_WORKERS=str(WORKERS),
        PAYMUX_RECONCILIATION_TIME="00:00",  # the daily close is due at once, on every worker
        PAYMUX_WEBHOOK_RELAY_INTERVAL_SECONDS="0.2",
    )
    try:
        wait_http(f"http://127.0.0.1:{hook_port}/health", proc=receiver)
        stack.start_sandboxes()
        stack.start_gateway()
        stack.wait_gateway(timeout=120)
        assert len(_worker_pids(stack)) == WORKERS
        assert _serving_pids(stack, WORKERS) == _worker_pids(stack)

        merchants = [new_merchant(stack, name=f"workers {i}") for i in range(2)]
        for m in merchants:
            hook = f"http://127.0.0.1:{hook_port}/hook/{m.merchant_id}"
            created = m.client.post("/v1/webhook_endpoints", json={"url": hook})
            assert created.status_code == 201, created.text
            secret = created.json()["secret"]
            httpx.post(f"http://127.0.0.1:{hook_port}/secrets/{m.merchant_id}", content=secret)

        # 36 keys, each sent twice at the same time: the twins may land on two workers.
        jobs = []
        for i in range(36):
            m = merchants[i % 2]
            body = {"amount": 1000 + i, "currency": "CNY", "payee": PAYEES[i % len(PAYEES)]}
            key = uuid.uuid4().hex
            jobs += [(m, key, body), (m, key, body)]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda job: _send(*job), jobs))
        records: dict[str, KeyRecord] = {}
        for (m, key, _), answer in zip(jobs, answers, strict=True):
            assert m.merchant_id is not None
            records.setdefault(key, KeyRecord(m.merchant_id, key)).answers.append(answer)
        assert {a[0] for a in answers} <= {200, 201}, Counter(a[0] for a in answers)

        day = (datetime.now(ZoneInfo("Asia/Shanghai")).date() - timedelta(days=1)).isoformat()
        deadline = time.monotonic() + 180
        while True:
            rows = asyncio.run(_db_rows(str(stack.database_url), day))
            settled = not (rows["busy"] or rows["unrelayed"] or rows["undelivered"])
            if settled or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        time.sleep(1)  # the last acked deliveries' lines reach the receiver's file
        rows = asyncio.run(_db_rows(str(stack.database_url), day))

        transfers = [TransferRow(*r) for r in rows["transfers"]]
        deliveries = [
            Delivery(d["merchant_id"], d["headers"], d["body"], d["error"])
            for d in map(json.loads, deliveries_file.read_text().splitlines())
        ]
        checks = [
            check_keys(records.values(), transfers),
            check_channel_orders(_sandbox_orders(stack), transfers),
            check_settled(transfers),
            # The top-ups' events came before the endpoints existed: nobody to deliver to.
            check_webhooks(
                [tuple(e) for e in rows["events"] if e[1].startswith("transfer.")],
                transfers,
                [d for d in deliveries if '"type":"transfer.' in d.body.replace(" ", "")],
            ),
        ]
        assert all(row.ok for row in checks), [(r.check, r.violations) for r in checks if not r.ok]
        assert len(transfers) == 36
        # Each event delivered once: the schedule's claim hands an item to one worker only.
        twice = {i: n for i, n in Counter(d.headers["webhook-id"] for d in deliveries).items()}
        assert set(twice.values()) == {1}, {i: n for i, n in twice.items() if n > 1}
        # The daily close: every worker tried, one claimed each job and finished it.
        claimed = Counter(job for job, _, _ in rows["jobs"])
        assert claimed["ledger_digest"] == 1 and set(claimed.values()) == {1}, claimed
        assert all(finished is not None for _, _, finished in rows["jobs"])
        served = {int(who.rsplit(":", 1)[1]) for _, who, _ in rows["jobs"]}
        assert served <= _worker_pids(stack)
    finally:
        stack.stop_all()
        receiver.terminate()
        receiver.wait(10)
