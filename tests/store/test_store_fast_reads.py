"""The fast reads of a transfer fail safe.

- SQLite reads one transfer on the event loop's own read-only connection. When that
  connection cannot answer (here: closed under it, as after a failed open or a file it lost),
  the read falls back to the usual threaded path and still returns the transfer, and the
  next read opens a fresh inline reader.
- PostgreSQL reads (and writes) on the bare asyncpg connection of a pooled connection,
  checked out and returned around each statement. When the server ends every session, reads
  work again (any failure meanwhile is the store's own ``DatabaseUnavailable``, a 503, never
  a raw driver error); a call cancelled mid-statement (its client went away) leaves no
  connection busy or leaked: every pooled connection answers at once afterwards. (A
  connection that failed other than by the server refusing a statement is also discarded
  rather than returned; asyncpg cleans up after both cases above by itself, so these tests
  hold with or without that guard.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

import pytest
from sqlalchemy import text

from paymux.domain.outcomes import Outcome
from paymux.service.gateway import Gateway
from paymux.store.errors import DatabaseUnavailable
from tests.store.store_support import new_funded_merchant, transfer

ON_POSTGRES = bool(os.environ.get("PAYMUX_TEST_DATABASE_URL"))


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite's inline reader (the SQLite pass runs it)")
async def test_sqlite_read_falls_back_when_the_inline_reader_cannot_answer(gw: Gateway) -> None:
    merchant_id = await new_funded_merchant(gw, 100_000)
    made = (await transfer(gw, merchant_id, 1_000, Outcome.SUCCEEDED)).transfer
    reader = gw.db.inline_reader()
    assert reader is not None
    assert await gw.transfers.get(made.id, merchant_id) == made  # read inline
    reader.close()  # every further use raises sqlite3.ProgrammingError
    before = gw.db.counters.statements
    assert await gw.transfers.get(made.id, merchant_id) == made  # read the usual way
    assert gw.db.counters.statements - before == 1
    fresh = gw.db.inline_reader()  # the broken reader was dropped: a new one is opened
    assert fresh is not None and fresh is not reader
    assert await gw.transfers.get(made.id) == made


@pytest.mark.skipif(not ON_POSTGRES, reason="PostgreSQL only (CI's second pass)")
async def test_postgres_dead_driver_connections_are_discarded(gw: Gateway) -> None:
    merchant_id = await new_funded_merchant(gw, 100_000)
    made = (await transfer(gw, merchant_id, 1_000, Outcome.SUCCEEDED)).transfer
    assert await gw.transfers.get(made.id, merchant_id) == made
    database = gw.db.engine.url.database
    # The server ends every session of the gateway's database (a failover, an admin), from a
    # connection of its own.
    async with gw.db.engine.connect() as admin:
        await admin.execution_options(isolation_level="AUTOCOMMIT")
        own = (await admin.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        await admin.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = :db AND pid <> :own"
            ),
            {"db": database, "own": own},
        )
    failures = 0
    for _ in range(gw.settings.database_pool_size + 2):
        try:
            assert await gw.transfers.get(made.id, merchant_id) == made
        except DatabaseUnavailable:
            failures += 1  # a dead connection: reported in our words, then discarded
            continue
        break
    else:
        pytest.fail("every read failed: dead connections went back to the pool")
    # Once working again, it stays working: no dead connection is left in the pool.
    for _ in range(gw.settings.database_pool_size + 2):
        assert await gw.transfers.get(made.id, merchant_id) == made
    assert failures <= gw.settings.database_pool_size + 1


@pytest.mark.skipif(not ON_POSTGRES, reason="PostgreSQL only (CI's second pass)")
async def test_postgres_a_cancelled_driver_call_leaves_no_busy_connection(gw: Gateway) -> None:
    merchant_id = await new_funded_merchant(gw, 100_000)
    made = (await transfer(gw, merchant_id, 1_000, Outcome.SUCCEEDED)).transfer

    async def slow(conn: Any) -> None:
        await conn.fetchval("SELECT pg_sleep(5)")

    for _ in range(3):
        task = asyncio.create_task(gw.db.run_on_driver(slow))
        await asyncio.sleep(0.2)
        task.cancel()  # a request whose client went away mid-statement
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # Every pooled connection, the cancelled one included, answers at once.
        reads = [
            gw.transfers.get(made.id, merchant_id) for _ in range(gw.settings.database_pool_size)
        ]
        assert await asyncio.gather(*reads) == [made] * gw.settings.database_pool_size
