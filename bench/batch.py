"""Time for a 1,000-item batch to reach all-final against the sandboxes.

Starts Redis, both sandboxes (no latency, no faults, WeChat pre-authorised) and the
gateway, posts one batch of mixed payees (Alipay accounts, WeChat openids, bank cards), and
measures from the POST to the batch's ``completed`` status (every item final).

    python -m bench.batch [--items 1000] [--databases sqlite,postgres]
                          [--rate 50] [--concurrency 8]

``--rate`` / ``--concurrency`` are the per-channel limits of the batch worker
(PAYMUX_BATCH_DEFAULT_RATE_PER_SECOND / PAYMUX_BATCH_DEFAULT_CONCURRENCY).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from paymux.devstack import Stack, free_port
from paymux.redis_embedded import EmbeddedRedis

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DB = "paymux_bench_batch"


async def _recreate_pg_db() -> None:
    import asyncpg  # type: ignore[import-untyped]  # noqa: PLC0415

    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=3)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{PG_DB}"')
    finally:
        await conn.close()


def items(n: int) -> list[dict[str, Any]]:
    tag = uuid.uuid4().hex[:8]
    out = []
    for i in range(n):
        kind = ("alipay_account", "wechat_openid", "bank_card")[i % 3]
        payee: dict[str, Any] = {
            "alipay_account": {"type": kind, "account": f"b{i}@example.com"},
            "wechat_openid": {"type": kind, "account": f"o_bench_{i}"},
            "bank_card": {"type": kind, "account": f"62220212{i:08d}", "name": "张三"},
        }[kind]
        out.append({"reference": f"{tag}-{i}", "amount": 100, "currency": "CNY", "payee": payee})
    return out


def run(db: str, url: str, args: argparse.Namespace, redis_url: str) -> float:
    quiet = ["--latency-ms", "0", "--fault-rate", "0", "--notify-schedule", "0"]
    with tempfile.TemporaryDirectory(prefix="paymux-batch-bench-") as tmp:
        stack = Stack(
            data_dir=Path(tmp),
            database_url=url,
            redis_url=redis_url,
            gateway_port=free_port(),
            sandbox_ports={"alipay": free_port(), "wechat": free_port()},
            sandbox_args={"alipay": quiet, "wechat": [*quiet, "--confirmation", "preauthorized"]},
            gateway_env={
                "PAYMUX_LOG_LEVEL": "warning",
                "PAYMUX_PUBLIC_URL": f"http://127.0.0.1:{free_port()}",
                "PAYMUX_BATCH_DEFAULT_RATE_PER_SECOND": str(args.rate),
                "PAYMUX_BATCH_DEFAULT_CONCURRENCY": str(args.concurrency),
                "PAYMUX_BATCH_INTERVAL_SECONDS": "0.05",
            },
            admin_key="ak_bench_" + uuid.uuid4().hex,
            quiet=True,
        )
        try:
            stack.start_sandboxes()
            stack.start_gateway()
            stack.wait_gateway()
            admin = httpx.Client(
                base_url=stack.gateway_url,
                timeout=120,
                headers={"Authorization": f"Bearer {stack.admin_key}"},
            )
            made = admin.post("/v1/merchants", json={"name": "batch bench"}).json()
            admin.post(
                f"/v1/merchants/{made['id']}/topups",
                json={"amount": 10**10, "currency": "CNY"},
                headers={"Idempotency-Key": uuid.uuid4().hex},
            ).raise_for_status()
            api = httpx.Client(
                base_url=stack.gateway_url,
                timeout=120,
                headers={"Authorization": f"Bearer {made['secret_key']}"},
            )
            body = {"items": items(args.items)}
            started = time.monotonic()
            resp = api.post(
                "/v1/transfer_batches", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
            )
            resp.raise_for_status()
            accepted = time.monotonic() - started
            batch_id = resp.json()["id"]
            while True:
                view = api.get(f"/v1/transfer_batches/{batch_id}").json()
                if view["status"] == "completed":
                    break
                time.sleep(0.05)
            elapsed = time.monotonic() - started
            print(
                f"{db}: {args.items} items accepted in {accepted:.2f} s, all final after "
                f"{elapsed:.2f} s ({args.items / elapsed:.0f} items/s); counts {view['counts']}",
                flush=True,
            )
            return elapsed
        finally:
            stack.stop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="paymux-batch-bench-redis-"))
    redis = EmbeddedRedis(root / "redis")
    redis_url = redis.start()
    try:
        for db in args.databases.split(","):
            if db == "sqlite":
                with tempfile.TemporaryDirectory() as tmp:
                    run(db, f"sqlite+aiosqlite:///{tmp}/bench.db", args, redis_url)
            else:
                asyncio.run(_recreate_pg_db())
                run(db, f"postgresql+asyncpg://postgres@127.0.0.1:5432/{PG_DB}", args, redis_url)
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
