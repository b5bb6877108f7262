"""Driver errors become the store's own, whichever driver raised them (store/errors.py).

The fast paths call asyncpg and sqlite3 directly, so their errors reach the store's edge
unwrapped by SQLAlchemy; a connection the driver can no longer use must read as
``DatabaseUnavailable`` (a 503 the client may retry), never as an unknown error (a 500).
"""

from __future__ import annotations

import sqlite3

import asyncpg
import pytest

from paymux.store.errors import DatabaseUnavailable, UniqueViolation, translate


@pytest.mark.parametrize(
    "error",
    [
        # The server's goodbye to a terminated session was half-read when the next
        # statement came (found by tests/store/test_store_fast_reads.py on PostgreSQL).
        asyncpg.exceptions.InternalClientError(
            "cannot switch to state 11; another operation (2) is in progress"
        ),
        asyncpg.exceptions.InterfaceError("connection is closed"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
        ConnectionRefusedError(111, "refused"),
        TimeoutError(),
        sqlite3.OperationalError("database is locked"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_an_unusable_connection_is_unavailable(error: Exception) -> None:
    assert isinstance(translate(error), DatabaseUnavailable)


def test_unique_violations_from_either_bare_driver() -> None:
    pg = asyncpg.exceptions.UniqueViolationError("duplicate key value")
    lite = sqlite3.IntegrityError("UNIQUE constraint failed: transfers.id")
    assert isinstance(translate(pg), UniqueViolation)
    assert isinstance(translate(lite), UniqueViolation)


def test_other_errors_are_not_ours_to_translate() -> None:
    assert translate(ValueError("a bug")) is None
    assert translate(asyncpg.exceptions.CheckViolationError("check failed")) is None
