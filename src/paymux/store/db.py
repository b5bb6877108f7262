"""Engine set-up and transaction scopes for SQLite and PostgreSQL.

Writes that move money go through :meth:`Database.write`. On PostgreSQL each write
transaction relies on row locks (conditional UPDATEs and SELECT ... FOR UPDATE). SQLite has
one writer at a time: in-process writers queue on an asyncio lock (cheaper than spinning on
SQLITE_BUSY) and the transaction opens with BEGIN IMMEDIATE so a second process waits on
busy_timeout instead of failing mid-transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

_WRITE_OPTION = "paymux_write"


@dataclass
class Counters:
    """Per-process statement and transaction counters (read by the benchmark)."""

    statements: int = 0
    transactions: int = 0

    def snapshot(self) -> dict[str, int]:
        return {"sql_statements": self.statements, "sql_transactions": self.transactions}


class Database:
    def __init__(self, url: str, *, pool_size: int = 20, echo: bool = False) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self.counters = Counters()
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            database = parsed.database or ""
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
            if database in ("", ":memory:"):
                kwargs["poolclass"] = NullPool
            else:
                kwargs["pool_size"] = 8
                kwargs["max_overflow"] = 8
        else:
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = pool_size
            kwargs["pool_pre_ping"] = False
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._install_listeners()

    def _install_listeners(self) -> None:
        sync_engine = self.engine.sync_engine
        counters = self.counters

        @event.listens_for(sync_engine, "before_cursor_execute")
        def _count(*_: Any) -> None:
            counters.statements += 1

        @event.listens_for(sync_engine, "begin")
        def _begin(conn: Any) -> None:
            counters.transactions += 1
            if self.is_sqlite:
                immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
                conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        if self.is_sqlite:

            @event.listens_for(sync_engine, "connect")
            def _connect(dbapi_conn: Any, _record: Any) -> None:
                # Take over transaction control from the driver so BEGIN is ours.
                dbapi_conn.isolation_level = None
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction; commits on exit, rolls back on error."""
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._write_lock, self.engine.connect() as conn:
            await conn.execution_options(**{_WRITE_OPTION: True})
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only scope (a plain, deferred transaction)."""
        async with self.engine.connect() as conn:
            yield conn
            await conn.rollback()

    async def ping(self) -> None:
        from sqlalchemy import text  # noqa: PLC0415

        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
