"""SQLite's writer thread with group commit: the write transactions queued while one COMMIT
runs go into the next, each its own savepoint.

SQLite has one writer; a transfer's writes are small, so a COMMIT (WAL frames for every page
the transaction touched, the write lock taken and released, a thread hop each way) costs as
much as the work itself. Here the transactions that arrive while the writer is busy are run
one after another inside ONE ``BEGIN IMMEDIATE ... COMMIT``:

- each runs between ``SAVEPOINT`` and ``RELEASE``, so one that raises (a unique key, funds
  that do not cover) is rolled back alone and its caller gets its exception, as before;
- every caller is answered only after the COMMIT that holds its work returned, so nothing
  is acknowledged before it is as durable as a transaction of its own would have been; if
  that COMMIT fails, every caller in it gets the error and none of their work is kept;
- if SQLite abandons the whole transaction (it may, after an I/O or disk-full error), the
  callers whose work was in it get that error too, never a success;
- a caller cancelled before its batch starts is skipped (as it would have been while it
  waited for the lock); one cancelled after runs to completion (as before).

A lone writer is a batch of one: nothing waits for company, so an idle gateway's latency is
unchanged. The batch is bounded (``max_batch``) so a burst does not make one long commit.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import Connection, Engine

T = TypeVar("T")
Work = Callable[[Connection], Any]
_SAVEPOINT = "paymux_item"


class _Queued(Generic[T]):
    __slots__ = ("fn", "future")

    def __init__(self, fn: Callable[[Connection], T], future: asyncio.Future[T]) -> None:
        self.fn = fn
        self.future = future


class GroupCommitter:
    def __init__(
        self,
        engine: Engine,
        executor: ThreadPoolExecutor,
        lock: asyncio.Lock,
        *,
        options: Mapping[str, Any],
        on_batch: Callable[[int], None],
        max_batch: int = 64,
    ) -> None:
        self._engine = engine
        self._executor = executor
        self._lock = lock
        self._options = dict(options)
        self._on_batch = on_batch  # told each batch's size (the transactions it holds)
        self._max_batch = max_batch
        self._queue: list[_Queued[Any]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` atomically; return once the COMMIT holding its work has returned."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append(_Queued(fn, future))
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        batch: list[_Queued[Any]] = []
        try:
            while self._queue:
                taken = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                batch = [q for q in taken if not q.future.cancelled()]
                if not batch:
                    continue
                fns = [q.fn for q in batch]
                # The asyncio lock keeps this process's `write()` scopes and the writer
                # thread from meeting at SQLite's file lock.
                async with self._lock:
                    results = await loop.run_in_executor(self._executor, self._run_batch, fns)
                for q, (ok, value) in zip(batch, results, strict=True):
                    if not q.future.done():
                        if ok:
                            q.future.set_result(value)
                        else:
                            q.future.set_exception(value)
                batch = []
        except BaseException as exc:
            # The executor is gone (shutdown) or this task was cancelled: nobody waiting
            # may hang. Work already handed to the thread may still commit, as before.
            # A process-level exception from a write (not a cancellation) reaches every
            # caller as itself: the process is going down, not "the writer stopped".
            failure: BaseException = (
                RuntimeError("writer stopped") if isinstance(exc, asyncio.CancelledError) else exc
            )
            for q in [*batch, *self._queue]:
                if not q.future.done():
                    q.future.set_exception(failure)
            self._queue.clear()
            raise
        finally:
            self._drainer = None

    def _run_batch(self, fns: list[Work]) -> list[tuple[bool, Any]]:
        """On the writer thread: every ``fn`` in its own savepoint, then one COMMIT."""
        results: list[tuple[bool, Any]] = []
        self._on_batch(len(fns))
        try:
            with self._engine.connect() as raw:
                conn = raw.execution_options(**self._options)
                with conn.begin():
                    dbapi = cast(sqlite3.Connection, conn.connection.dbapi_connection)
                    cursor = dbapi.cursor()
                    for fn in fns:
                        cursor.execute(f"SAVEPOINT {_SAVEPOINT}")
                        try:
                            value = fn(conn)
                        except Exception as exc:  # this one's failure, not the batch's
                            if not dbapi.in_transaction:
                                # SQLite rolled back the whole transaction (I/O error, disk
                                # full): the earlier ones' work went with it.
                                raise _Abandoned(exc) from exc
                            cursor.execute(f"ROLLBACK TO {_SAVEPOINT}")
                            cursor.execute(f"RELEASE {_SAVEPOINT}")
                            results.append((False, exc))
                        else:
                            cursor.execute(f"RELEASE {_SAVEPOINT}")
                            results.append((True, value))
                    cursor.close()
                # COMMIT returned: everything in `results` is as durable as it gets.
        except Exception as exc:
            failure = exc.cause if isinstance(exc, _Abandoned) else exc
            done = [(False, value if not ok else failure) for ok, value in results]
            # The one that failed and any not yet run share the batch's failure.
            return done + [(False, failure)] * (len(fns) - len(done))
        return results


class _Abandoned(Exception):
    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause
