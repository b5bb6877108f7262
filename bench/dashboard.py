"""How fast the dashboard's queries are on a large database (SQLite or PostgreSQL).

Bulk-loads N succeeded transfers over the last ~30 days with bench/prefill.py, then times
the reads behind each dashboard page, as the gateway runs them (service layer, no HTTP):
the overview (cold and cached), the newest transfers page (operator and merchant), a page
deep in the list (keyset), search by id / channel reference / order id, a status filter,
and one transfer's timeline. Prints one line per query with its median of a few runs.

    python -m bench.dashboard [--transfers 1000000] [--database-url postgresql+asyncpg://...]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.prefill import needed_funds, prefill
from paymux.redis_embedded import EmbeddedRedis
from paymux.service import dashboard as svc
from paymux.service.balances import create_topup
from paymux.service.bootstrap import build_gateway, close_gateway
from paymux.service.gateway import Gateway
from paymux.service.merchants import create_merchant
from paymux.settings import Settings
from paymux.store.dashboard_repo import TransferSearch


async def _timed(label: str, call: Callable[[], Awaitable[Any]], runs: int = 5) -> None:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await call()
        times.append((time.perf_counter() - t0) * 1000)
    print(f"{label:<44} median {statistics.median(times):8.1f} ms   max {max(times):8.1f} ms")


async def _run(gw: Gateway, n: int) -> None:
    row, _ = await create_merchant(gw, "bench dashboard")
    merchant = row["id"]
    await create_topup(
        gw,
        merchant,
        amount=needed_funds(n),
        currency="CNY",
        description=None,
        idempotency_key="bench",
        fingerprint="bench",
    )
    t0 = time.perf_counter()
    await asyncio.to_thread(prefill, gw.settings.database_url, merchant, n)
    print(f"prefilled {n} transfers in {time.perf_counter() - t0:.0f} s")

    first, _ = await svc.search_transfers(gw, TransferSearch(merchant_id=None, limit=50))
    # A cursor 1,000 rows down the merchant's list.
    deep, _ = await svc.search_transfers(
        gw, TransferSearch(merchant_id=merchant, limit=min(1000, n - 1))
    )
    cursor = deep[-1]["id"]
    sample = first[10]

    async def overview_cold() -> None:
        svc.forget_cached_figures()
        await svc.overview(gw, None)

    await _timed("overview, operator, cold (30 day queries)", overview_cold, runs=3)
    await _timed("overview, operator, cached", lambda: svc.overview(gw, None))
    await _timed(
        "transfers page 1, operator",
        lambda: svc.search_transfers(gw, TransferSearch(merchant_id=None, limit=50)),
    )
    await _timed(
        "transfers page 1, merchant",
        lambda: svc.search_transfers(gw, TransferSearch(merchant_id=merchant, limit=50)),
    )
    await _timed(
        "transfers page after 1,000 rows (keyset)",
        lambda: svc.search_transfers(
            gw, TransferSearch(merchant_id=merchant, before_id=cursor, limit=50)
        ),
    )
    for label, text in (
        ("search by transfer id", sample["id"]),
        ("search by channel reference", sample["channel_reference"]),
        ("search by channel order id", sample["channel_order_id"]),
    ):
        await _timed(
            label,
            lambda text=text: svc.search_transfers(  # type: ignore[misc]
                gw, TransferSearch(merchant_id=None, text=text, limit=50)
            ),
        )
    await _timed(
        "status = failed (none among N)",
        lambda: svc.search_transfers(gw, TransferSearch(merchant_id=None, status="failed")),
    )
    await _timed(
        "timeline of one transfer",
        lambda: svc.timeline(gw, sample["id"], None, operator=True),
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transfers", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="paymux-bench-dashboard-") as tmp:
        root = Path(tmp)
        redis = EmbeddedRedis(root / "redis", persistence=False)
        settings = Settings(
            data_dir=root,
            database_url=args.database_url or f"sqlite+aiosqlite:///{root / 'paymux.db'}",
            redis_url=redis.start(),
            channels_file=root / "none.toml",
            enabled_channels=[],
        )
        gw = await build_gateway(settings)
        try:
            await _run(gw, args.transfers)
        finally:
            await close_gateway(gw)
            redis.stop()


if __name__ == "__main__":
    asyncio.run(main())
