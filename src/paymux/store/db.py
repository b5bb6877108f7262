"""Engine set-up and transaction scopes for SQLite and PostgreSQL.

Money-moving transactions are plain functions of a sync ``Connection`` run by
:meth:`Database.run_write`:

- SQLite has one writer at a time, so the whole transaction runs in one hop on a dedicated
  writer thread (BEGIN IMMEDIATE ... COMMIT). Holding the write lock across event-loop turns
  (one per statement with aiosqlite) made every writer wait for every other request's CPU
  work; in one hop the lock is held only for the SQLite work itself.
- PostgreSQL runs the function on the async engine (``run_sync``); row locks (conditional
  UPDATEs) serialize only what must be, and callers put the balance UPDATE last so a hot
  merchant row is locked for as short as possible.

:meth:`Database.write` is the async scope for everything else; on SQLite it queues
in-process writers on an asyncio lock and also opens with BEGIN IMMEDIATE, so a writer in
another process or thread waits on busy_timeout instead of failing mid-transaction.

Every scope translates driver errors into the store's own (store/errors.py): a unique
violation is :class:`UniqueViolation` whichever driver raised it, a refused, dropped or
silent database is :class:`DatabaseUnavailable`. Every call is bounded (:class:`Timeouts`):
connect, waiting for a pooled connection, and each statement (PostgreSQL's own
statement_timeout plus a client-side bound that also covers a blackholed server; SQLite's
busy_timeout).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.util import await_, greenlet_spawn

from paymux.store.errors import StoreError, translate
from paymux.store.group_commit import GroupCommitter

_WRITE_OPTION = "paymux_write"
_GROUP_OPTION = "paymux_group_commit"  # its transactions are counted per savepoint
_SINGLE_OPTION = "paymux_single_statement"
_RETRYABLE_SQLSTATES = {"40P01", "40001"}
_DEADLOCK_RETRIES = 3
T = TypeVar("T")

# The transaction a :meth:`Database.run_write` function receives. Services pass it on to
# the store's repositories (so a change and its audit record commit together) and never
# execute SQL on it themselves.
WriteTx: TypeAlias = Connection
# A :meth:`Database.read` scope, handed on the same way (several reads, one snapshot).
ReadTx: TypeAlias = AsyncConnection


@dataclass
class Counters:
    """Per-process statement and transaction counters (read by the benchmark)."""

    statements: int = 0
    transactions: int = 0  # atomic units of work (a group commit holds several)
    commits: int = 0
    # Told the SQL of every statement, whichever driver ran it (tests watch what a request
    # runs; nothing is registered in production).
    watchers: list[Callable[[str], None]] = field(default_factory=list)

    def statement(self, sql: str) -> None:
        self.statements += 1
        for watch in self.watchers:
            watch(sql)

    def snapshot(self) -> dict[str, int]:
        return {
            "sql_statements": self.statements,
            "sql_transactions": self.transactions,
            "sql_commits": self.commits,
        }


@dataclass(frozen=True)
class Timeouts:
    """Bounds on every database call, in seconds (settings: database_*_timeout_seconds).

    The serving gateway passes its settings; ``statement=None`` (the default, for offline
    commands such as ``paymux ledger check`` over a large journal) bounds only connecting
    and waiting for a pooled connection.
    """

    connect: float = 3.0
    statement: float | None = None
    pool: float = 5.0
    # PostgreSQL's idle_in_transaction_session_timeout: the server rolls back a transaction
    # whose client stopped talking (a blackholed network leaves the session open for as
    # long as TCP keepalive takes, hours) and so releases its row locks.
    idle_in_transaction: float | None = None

    @property
    def client_statement(self) -> float | None:
        # The server's statement_timeout fires first and cancels cleanly; this client-side
        # bound is for a server that does not answer at all (blackholed, frozen).
        return None if self.statement is None else self.statement + 1.0


def _refused_by_server(exc: BaseException) -> bool:
    """The server answered with an error (a constraint, a deadlock): the connection is fine.
    Connection-class errors (SQLSTATE 08..., admin shutdown) say the opposite."""
    code = getattr(exc, "sqlstate", None)
    return isinstance(code, str) and not code.startswith(("08", "57P0"))


@contextmanager
def translated_errors() -> Iterator[None]:
    """Re-raise driver errors as the store's own (see store/errors.py)."""
    try:
        yield
    except StoreError:
        raise
    except Exception as exc:
        mine = translate(exc)
        if mine is None:
            raise
        raise mine from exc


class Database:
    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 20,
        echo: bool = False,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.url = url
        parsed = make_url(url)
        self.backend = parsed.get_backend_name()  # "sqlite" | "postgresql"
        self.is_sqlite = self.backend == "sqlite"
        self.counters = Counters()
        self.timeouts = t = timeouts or Timeouts()
        # SQLite: how long a writer waits for another process's write lock.
        sqlite_wait = t.statement if t.statement is not None else 30.0
        self._busy_ms = int(sqlite_wait * 1000)
        # hide_parameters: a failing statement's error (and so the log) must not carry its
        # parameters, which include payee accounts and names.
        kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
        if self.is_sqlite:
            database = parsed.database or ""
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": sqlite_wait}
            if database in ("", ":memory:"):
                kwargs["poolclass"] = NullPool
            else:
                kwargs["pool_size"] = 8
                kwargs["max_overflow"] = 8
                kwargs["pool_timeout"] = t.pool
        else:
            # A fixed pool: a request that finds every connection busy waits for one
            # (bounded by pool_timeout) rather than opening an overflow connection that is
            # closed again on return. Each such connection is a new server backend (a fork
            # and a cold catalog cache): measured ~1 ms of PostgreSQL CPU per transfer at
            # c=50 with 20 + 20 overflow, and the server's max_connections holds exactly
            # pool_size per process.
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = 0
            kwargs["pool_pre_ping"] = False
            kwargs["pool_timeout"] = t.pool
            connect_args: dict[str, Any] = {"timeout": t.connect}
            server_settings: dict[str, str] = {}
            if t.statement is not None:
                connect_args["command_timeout"] = t.client_statement
                server_settings["statement_timeout"] = str(int(t.statement * 1000))
            if t.idle_in_transaction is not None:
                ms = int(t.idle_in_transaction * 1000)
                server_settings["idle_in_transaction_session_timeout"] = str(ms)
            if server_settings:
                connect_args["server_settings"] = server_settings
            kwargs["connect_args"] = connect_args
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._writer_engine: Engine | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._group: GroupCommitter | None = None
        if self.is_sqlite:
            self._writer_engine = create_engine(
                parsed.set(drivername="sqlite"),
                connect_args={"timeout": sqlite_wait},
                hide_parameters=True,
                pool_size=1,
                max_overflow=0,
            )
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="paymux-sqlite-writer")
            self._install_listeners(self._writer_engine)
            assert self._write_lock is not None
            self._group = GroupCommitter(
                self._writer_engine,
                self._writer,
                self._write_lock,
                options={_WRITE_OPTION: True, _GROUP_OPTION: True},
                on_batch=self._count_batch,
            )
        self._install_listeners(self.engine.sync_engine)
        self._inline: sqlite3.Connection | None = None
        self._sqlite_path = (
            parsed.database
            if self.is_sqlite and parsed.database not in (None, "", ":memory:")
            else None
        )

    async def run_write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one write transaction (commit on return, rollback on raise)."""
        with translated_errors():
            return await self._run_write(fn)

    async def _run_write(self, fn: Callable[[Connection], T]) -> T:
        if self._writer_engine is None:
            for attempt in range(_DEADLOCK_RETRIES):
                try:
                    async with self.engine.begin() as conn:
                        return await conn.run_sync(fn)
                except DBAPIError as exc:
                    # Deadlock / serialization failure: PostgreSQL rolled the whole
                    # transaction back, so running it again is safe.
                    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
                    if code not in _RETRYABLE_SQLSTATES or attempt == _DEADLOCK_RETRIES - 1:
                        raise
            raise AssertionError("unreachable")
        # Several writers' transactions per COMMIT, each in its own savepoint and answered
        # only once that COMMIT returned (store/group_commit.py).
        assert self._group is not None
        return await self._group.run(fn)

    def _count_batch(self, size: int) -> None:
        self.counters.transactions += size

    def _install_listeners(self, sync_engine: Engine) -> None:
        counters = self.counters

        @event.listens_for(sync_engine, "before_cursor_execute")
        def _count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            counters.statement(statement)

        @event.listens_for(sync_engine, "begin")
        def _begin(conn: Any) -> None:
            options = conn.get_execution_options()
            if options.get(_SINGLE_OPTION, False):
                return  # read_statement(): the driver runs it in autocommit
            if not options.get(_GROUP_OPTION, False):
                counters.transactions += 1
            if self.is_sqlite:
                immediate = options.get(_WRITE_OPTION, False)
                conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        @event.listens_for(sync_engine, "commit")
        def _commit(conn: Any) -> None:
            counters.commits += 1

        if not self.is_sqlite:

            @event.listens_for(sync_engine, "checkout")
            def _drop_closed(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
                # A connection the server ended while it sat in the pool (a restart, a
                # failover, an admin) is known closed to the driver by now: discard it and,
                # as it is rarely alone, every connection pooled before it, instead of
                # failing the request that drew it. (SQLAlchemy's documented way; no round
                # trip, unlike pool_pre_ping.)
                driver = getattr(dbapi_conn, "driver_connection", None)
                if driver is not None and driver.is_closed():
                    raise InvalidatePoolError("connection closed by the server")

        if self.is_sqlite:

            @event.listens_for(sync_engine, "connect")
            def _connect(dbapi_conn: Any, record: Any) -> None:
                record.info["paymux_counters"] = counters  # for _sqlite_driver's calls
                # Take over transaction control from the driver so BEGIN is ours.
                dbapi_conn.isolation_level = None
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute(f"PRAGMA busy_timeout={self._busy_ms}")
                # Larger page cache and memory-mapped reads: fewer read syscalls per write.
                cur.execute("PRAGMA cache_size=-65536")
                cur.execute("PRAGMA mmap_size=268435456")
                cur.execute("PRAGMA temp_store=MEMORY")
                cur.close()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction; commits on exit, rolls back on error."""
        with translated_errors():
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
        with translated_errors():
            async with self.engine.connect() as conn:
                yield conn
                await conn.rollback()

    @asynccontextmanager
    async def read_statement(self) -> AsyncIterator[AsyncConnection]:
        """A scope for ONE read statement: no transaction around it (a single statement
        sees one consistent snapshot on its own), so it costs that statement alone: no
        BEGIN on SQLite, no BEGIN/ROLLBACK round trips on PostgreSQL."""
        with translated_errors():
            async with self.engine.connect() as conn:
                if self.is_sqlite:
                    await conn.execution_options(**{_SINGLE_OPTION: True})
                else:
                    await conn.execution_options(
                        isolation_level="AUTOCOMMIT", **{_SINGLE_OPTION: True}
                    )
                yield conn

    async def run_on_driver(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``fn`` (one self-contained statement) on the bare asyncpg connection of a
        pooled connection, outside any transaction (each statement commits on its own), for
        a repository's private fast path (store/_pg_driver.py). A deadlock victim's
        statement was rolled back whole, so it runs again, as in :meth:`run_write`."""
        assert not self.is_sqlite, "run_on_driver is PostgreSQL's"
        for attempt in range(_DEADLOCK_RETRIES):
            try:
                with translated_errors():
                    return await greenlet_spawn(self._pooled_driver_call, fn)
            except Exception as exc:
                if getattr(exc, "sqlstate", None) not in _RETRYABLE_SQLSTATES:
                    raise
                if attempt == _DEADLOCK_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _pooled_driver_call(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """Check a connection out of the engine's pool, await ``fn`` on its driver
        connection, check it back in: all in the one greenlet run_on_driver spawns (the
        pool may do I/O: connect, discard). Going through AsyncEngine.connect() instead cost
        three greenlets and a Connection object per statement, ~4 % of the gateway's CPU
        per transfer. A connection that failed for any reason but the server refusing a
        statement (a drop, a timeout, a cancelled call) may be mid-protocol, so it is
        discarded rather than handed to the next caller."""
        pooled = self.engine.sync_engine.pool.connect()
        try:
            return await_(fn(pooled.driver_connection))
        except BaseException as exc:
            if not _refused_by_server(exc):
                pooled.invalidate(exc if isinstance(exc, Exception) else None)
            raise
        finally:
            pooled.close()

    def inline_reader(self) -> sqlite3.Connection | None:
        """SQLite: a read-only connection of the event loop's own thread, for one-row
        reads by primary key (store/_sqlite_driver.Query). Such a read takes tens of
        microseconds in SQLite, less than handing it to a reader thread and back (the
        aiosqlite hop was most of a GET's cost). WAL readers never wait for the writer;
        busy_timeout is 0 so the loop is never parked on a lock: a caller that meets one
        reads the usual way instead. None for an in-memory database (no shared file)."""
        if self._inline is None and self.is_sqlite and self._sqlite_path:
            uri = Path(self._sqlite_path).resolve().as_uri() + "?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None)
            for pragma in (
                "busy_timeout=0",
                "query_only=ON",
                "cache_size=-16384",
                "mmap_size=268435456",
            ):
                conn.execute(f"PRAGMA {pragma}")
            self._inline = conn
        return self._inline

    def discard_inline_reader(self) -> None:
        """Forget the inline reader after it failed: the next read opens a fresh one."""
        reader, self._inline = self._inline, None
        if reader is not None:
            with suppress(sqlite3.Error):
                reader.close()

    async def ping(self) -> None:
        from sqlalchemy import text  # noqa: PLC0415

        async with self.read() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        await self.engine.dispose()
        if self._writer_engine is not None and self._writer is not None:
            self._writer.submit(self._writer_engine.dispose).result()
            self._writer.shutdown(wait=True)
