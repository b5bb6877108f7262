"""Group commit on SQLite's writer (store/group_commit.py): transactions queued together
share one COMMIT, yet each stays atomic on its own and nobody is answered for work that was
not committed. Always on a SQLite file of its own (the writer thread is SQLite's)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, text

from paymux.store.db import Database
from paymux.store.errors import UniqueViolation


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'group.db'}")
    await database.run_write(
        lambda c: c.exec_driver_sql("CREATE TABLE item (id INTEGER PRIMARY KEY, note TEXT)")
    )
    await database.run_write(
        lambda c: c.exec_driver_sql(
            "CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER"
            " REFERENCES item(id) DEFERRABLE INITIALLY DEFERRED)"
        )
    )
    yield database
    await database.dispose()


def insert(n: int, then: Callable[[Connection], Any] | None = None) -> Callable[[Connection], int]:
    def work(conn: Connection) -> int:
        conn.execute(text("INSERT INTO item (id, note) VALUES (:id, 'x')"), {"id": n})
        if then is not None:
            then(conn)
        return n

    return work


def boom(_: Connection) -> None:
    raise ValueError("refused after writing")


async def ids(db: Database) -> set[int]:
    async with db.read() as conn:
        return {row[0] for row in (await conn.execute(text("SELECT id FROM item"))).all()}


async def test_writers_queued_together_share_one_commit_and_each_gets_its_answer(
    db: Database,
) -> None:
    before = db.counters.snapshot()
    results = await asyncio.gather(*(db.run_write(insert(n)) for n in range(1, 21)))
    after = db.counters.snapshot()
    assert results == list(range(1, 21))
    assert await ids(db) == set(range(1, 21))
    assert after["sql_transactions"] - before["sql_transactions"] == 20  # atomic units
    assert after["sql_commits"] - before["sql_commits"] < 20  # fewer COMMITs than them


async def test_one_that_raises_is_rolled_back_alone(db: Database) -> None:
    outcomes = await asyncio.gather(
        db.run_write(insert(1)),
        db.run_write(insert(2, then=boom)),  # wrote its row, then raised
        db.run_write(insert(1)),  # unique key: the first one's id
        db.run_write(insert(3)),
        return_exceptions=True,
    )
    assert outcomes[0] == 1 and outcomes[3] == 3
    assert isinstance(outcomes[1], ValueError)
    assert isinstance(outcomes[2], UniqueViolation)
    assert await ids(db) == {1, 3}


async def test_a_failed_commit_fails_everyone_in_it_and_keeps_nothing(db: Database) -> None:
    # A deferred foreign key is checked at COMMIT: the whole batch's COMMIT fails.
    orphan = insert(
        2, then=lambda c: c.exec_driver_sql("INSERT INTO child (id, parent) VALUES (1, 999)")
    )
    outcomes = await asyncio.gather(
        db.run_write(insert(1)), db.run_write(orphan), db.run_write(insert(3)),
        return_exceptions=True,
    )  # fmt: skip
    assert all(isinstance(o, Exception) for o in outcomes), outcomes
    assert await ids(db) == set()
    assert await db.run_write(insert(4)) == 4  # the writer carries on
    assert await ids(db) == {4}


async def test_work_lost_with_an_abandoned_transaction_is_never_acknowledged(
    db: Database,
) -> None:
    def abandon(conn: Connection) -> None:
        # What SQLite does after an I/O or disk-full error: the whole transaction is gone.
        dbapi = conn.connection.dbapi_connection
        assert isinstance(dbapi, sqlite3.Connection)
        dbapi.execute("ROLLBACK")
        raise sqlite3.OperationalError("disk I/O error")

    outcomes = await asyncio.gather(
        db.run_write(insert(1)), db.run_write(insert(2, then=abandon)), db.run_write(insert(3)),
        return_exceptions=True,
    )  # fmt: skip
    assert all(isinstance(o, Exception) for o in outcomes), outcomes
    assert await ids(db) == set()
    assert await db.run_write(insert(5)) == 5
    assert await ids(db) == {5}


async def test_a_writer_cancelled_before_its_batch_started_never_runs(db: Database) -> None:
    ran: list[str] = []

    def slow(_: Connection) -> None:
        time.sleep(0.3)  # the writer thread is busy with this batch
        ran.append("slow")

    first = asyncio.ensure_future(db.run_write(slow))
    await asyncio.sleep(0.1)
    late = asyncio.ensure_future(db.run_write(lambda c: ran.append("late")))
    await asyncio.sleep(0)  # queued behind the running batch
    late.cancel()
    await first
    with pytest.raises(asyncio.CancelledError):
        await late
    await db.run_write(lambda c: ran.append("later"))
    assert ran == ["slow", "later"]


class ProcessDied(BaseException):
    """Not an Exception: like the simulation's SimulatedCrash (the process dies mid-write)."""


async def test_a_process_level_exception_reaches_every_caller_as_itself(db: Database) -> None:
    # Found by the simulation: its crash inside a transaction (a BaseException raised in a
    # write) came back from the group as RuntimeError("writer stopped"), an error escaping
    # the service instead of the death it was, so every such seed failed.
    def die(_: Connection) -> None:
        raise ProcessDied

    results = await asyncio.gather(
        db.run_write(insert(1)),
        db.run_write(die),
        db.run_write(insert(2)),
        return_exceptions=True,
    )
    assert all(isinstance(r, ProcessDied) for r in results)
    assert await ids(db) == set()  # nothing of the batch it died in was committed
