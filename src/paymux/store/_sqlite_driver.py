"""SQLite's fast path: statements compiled once, run on the bare ``sqlite3`` connection.

On SQLite the money-moving transactions run on one writer thread (see db.py), and there the
SQLAlchemy execution machinery (~60-100 µs per statement: execution context, parameter
processing, result wrapping) was most of each transaction's cost, not SQLite's own work.
A :class:`Statement` is compiled once by SQLAlchemy for the SQLite dialect and then executed
straight on the ``sqlite3`` connection of the caller's transaction. Its values go through
the bind processors of the statement's own column types (``UTCDateTime``, ``SealedText``,
``Boolean``, ...) for the SQLite dialect, exactly what SQLAlchemy runs on its own path, so
rows written either way are identical (tests/store/test_store_transfer_repo.py proves it).

Private to the store's repositories; :meth:`Statement.run` falls back to SQLAlchemy on any
other database, or when the caller asks for the generic path (``fast=False``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects.sqlite import pysqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import Select
from sqlalchemy.sql.dml import UpdateBase

_SQLITE = pysqlite.dialect()


def _identity(value: Any) -> Any:
    return value


class Statement:
    def __init__(self, stmt: UpdateBase, *, columns: Sequence[str] | None = None) -> None:
        self.stmt = stmt
        compiled = stmt.compile(dialect=_SQLITE, column_keys=list(columns) if columns else None)
        self.sql = str(compiled)
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        # Literals in the statement (e.g. the 0 of `balance + d >= 0`) are binds with values.
        self.defaults: dict[str, Any] = {
            name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required
        }
        # Each bind's own type decides its stored form, as on SQLAlchemy's path.
        processors: list[Callable[[Any], Any]] = []
        for name in self.names:
            bind_type = compiled.binds[name].type
            processor = bind_type.dialect_impl(_SQLITE).bind_processor(_SQLITE)
            processors.append(processor or _identity)
        self.processors = tuple(processors)

    def _row(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(
            process(params[n] if n in params else self.defaults[n])
            for n, process in zip(self.names, self.processors, strict=True)
        )

    def run(self, conn: Connection, params: Mapping[str, Any], *, fast: bool = True) -> int:
        """Execute once; returns the row count."""
        if not fast or conn.dialect.name != "sqlite":
            return int(conn.execute(self.stmt, dict(params)).rowcount)
        _count(conn, self.sql)
        try:
            cursor = _driver(conn).execute(self.sql, self._row(params))
        except sqlite3.IntegrityError as exc:
            # Wrapped as SQLAlchemy wraps it; db.py then turns a unique violation into
            # store.errors.UniqueViolation, whichever driver raised it.
            raise IntegrityError(self.sql, None, exc) from exc
        return int(cursor.rowcount)

    def run_many(
        self, conn: Connection, rows: Sequence[Mapping[str, Any]], *, fast: bool = True
    ) -> None:
        if not fast or conn.dialect.name != "sqlite":
            conn.execute(self.stmt, [dict(r) for r in rows])
            return
        _count(conn, self.sql)
        try:
            _driver(conn).executemany(self.sql, [self._row(r) for r in rows])
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(self.sql, None, exc) from exc


class Query:
    """A SELECT compiled once for SQLite and run on a bare ``sqlite3`` connection (the
    event loop's read-only one, ``Database.inline_reader``); every column read through its
    type's result processor for SQLite, as SQLAlchemy's own path reads it."""

    def __init__(self, stmt: Select[Any]) -> None:
        compiled = stmt.compile(dialect=_SQLITE)
        self.sql = str(compiled)
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self.binds = tuple(
            compiled.binds[n].type.dialect_impl(_SQLITE).bind_processor(_SQLITE) or _identity
            for n in self.names
        )
        self.columns = tuple(c.name for c in stmt.selected_columns)
        self.readers = tuple(
            c.type.dialect_impl(_SQLITE).result_processor(_SQLITE, None) or _identity
            for c in stmt.selected_columns
        )

    def first(self, conn: sqlite3.Connection, params: Mapping[str, Any]) -> dict[str, Any] | None:
        args = tuple(bind(params[n]) for n, bind in zip(self.names, self.binds, strict=True))
        found = conn.execute(self.sql, args).fetchone()
        if found is None:
            return None
        return {
            name: read(value)
            for name, read, value in zip(self.columns, self.readers, found, strict=True)
        }


def _driver(conn: Connection) -> sqlite3.Connection:
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    return driver


def _count(conn: Connection, sql: str) -> None:
    counters = conn.info.get("paymux_counters")
    if counters is not None:
        counters.statement(sql)
