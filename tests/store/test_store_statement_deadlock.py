"""A deadlock in a single autocommit statement is retried, not answered 500.

Found by the chaos suite: two replicas inserting a pending transfer for the same key at once
(the same merchant's retry arriving on both while an outage had let its Redis lease lapse)
deadlocked in PostgreSQL (each statement held what the other needed: the balance row and
the unique key), and the single-statement path — unlike ``run_write`` — let the 40P01
escape as an internal error. PostgreSQL rolls the whole statement back, so running it again
is safe, and the second run meets the committed twin as a unique violation, which replays.
The single statements (the create, a status move) now run on the bare driver connection
(``Database.run_on_driver``), which retries the same way.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from paymux.service.gateway import Gateway

pytestmark = pytest.mark.skipif(
    not os.environ.get("PAYMUX_TEST_DATABASE_URL"),
    reason="PostgreSQL only (CI's second pass): SQLite has one writer, so no deadlocks",
)


def _locks(first: int, second: int) -> str:
    # Advisory locks take part in deadlock detection; left-to-right evaluation with a pause
    # in between makes two opposite orders deadlock every time.
    return f"SELECT pg_advisory_xact_lock({first}), pg_sleep(0.5), pg_advisory_xact_lock({second})"


async def test_a_deadlocked_statement_is_run_again(gw: Gateway) -> None:
    ran: list[str] = []

    def statement(sql: str, name: str) -> Callable[[Any], Awaitable[None]]:
        async def fn(conn: Any) -> None:  # the bare asyncpg connection
            await conn.execute(sql)
            ran.append(name)

        return fn

    a, b = 913_001, 913_002
    await asyncio.gather(
        gw.db.run_on_driver(statement(_locks(a, b), "a")),
        gw.db.run_on_driver(statement(_locks(b, a), "b")),
    )
    assert sorted(ran) == ["a", "b"]  # the deadlock's victim ran again and completed
