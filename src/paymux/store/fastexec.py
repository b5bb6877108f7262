"""Prepared hot-path statements: SQLAlchemy on PostgreSQL, the bare driver on SQLite.

On SQLite the money-moving transactions run on one writer thread (see db.py) and there the
SQLAlchemy execution machinery (~60-100 µs per statement: execution context, parameter
processing, result wrapping) was most of each transaction's cost, not SQLite's own work.
A :class:`Prepared` statement is compiled once by SQLAlchemy for the SQLite dialect and then
executed straight on the ``sqlite3`` connection of the caller's transaction, with values
adapted exactly as SQLAlchemy would store them (timestamps as naive UTC text with
microseconds), so rows written either way read back and compare identically.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects.sqlite import pysqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.dml import UpdateBase

from paymux.store.sealed import SealedText

_SQLITE = pysqlite.dialect()


def _adapt(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        # SQLAlchemy's SQLite DateTime storage format, so text comparisons stay ordered.
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, bool):
        return int(value)
    return value


class Prepared:
    def __init__(self, stmt: UpdateBase, *, columns: Sequence[str] | None = None) -> None:
        self.stmt = stmt
        compiled = stmt.compile(dialect=_SQLITE, column_keys=list(columns) if columns else None)
        self.sql = str(compiled)
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        # Literals in the statement (e.g. the 0 of `balance + d >= 0`) are binds with values.
        self.defaults: dict[str, Any] = {
            name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required
        }
        # Sealed columns are encrypted here as SQLAlchemy's bind processing would.
        self.sealed: dict[str, SealedText] = {
            name: bind.type
            for name, bind in compiled.binds.items()
            if isinstance(bind.type, SealedText)
        }

    def _row(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        values = tuple(_adapt(params[n] if n in params else self.defaults[n]) for n in self.names)
        if not self.sealed:
            return values
        return tuple(
            self.sealed[n].process_bind_param(v, _SQLITE) if n in self.sealed else v
            for n, v in zip(self.names, values, strict=True)
        )

    def run(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Execute once; returns the row count."""
        if conn.dialect.name != "sqlite":
            return int(conn.execute(self.stmt, dict(params)).rowcount)
        _count(conn)
        try:
            cursor = conn.connection.driver_connection.execute(self.sql, self._row(params))  # type: ignore[union-attr]
        except sqlite3.IntegrityError as exc:
            # Wrapped as SQLAlchemy wraps it; db.py then turns a unique violation into
            # store.errors.UniqueViolation, whichever driver raised it.
            raise IntegrityError(self.sql, None, exc) from exc
        return int(cursor.rowcount)

    def run_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        if conn.dialect.name != "sqlite":
            conn.execute(self.stmt, [dict(r) for r in rows])
            return
        _count(conn)
        conn.connection.driver_connection.executemany(  # type: ignore[union-attr]
            self.sql, [self._row(r) for r in rows]
        )


def _count(conn: Connection) -> None:
    counters = conn.info.get("paymux_counters")
    if counters is not None:
        counters.statements += 1
