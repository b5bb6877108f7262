"""PostgreSQL's fast path: statements compiled once for asyncpg, run on the bare driver.

Through SQLAlchemy's asyncio layer every statement costs a greenlet switch, an execution
context, parameter and result processing in Python and, for a transaction, BEGIN and COMMIT
round trips of their own: measured, the gateway spent ~5 ms of CPU per transfer on
PostgreSQL against ~3 ms on SQLite for the same work. A :class:`PgStatement` is compiled
once by SQLAlchemy for the asyncpg dialect (``$n`` placeholders, the casts SQLAlchemy itself
renders) and run with ``asyncpg.Connection.fetch*`` on the connection
``Database.run_on_driver`` hands out (outside any transaction: each statement commits
on its own, so statements here are written to be atomic alone, as data-modifying CTEs).
Values go through the bind processors of each parameter's own type for that dialect
(``UTCDateTime``, ``SealedText``, ...) and columns come back through the result
processors, exactly what SQLAlchemy runs on its own path, so both write and read the same
rows (tests/store/test_store_transfer_repo.py proves it).

asyncpg prepares each statement once per connection and keeps it (its statement cache), so a
hot statement is parsed and planned by the server once per pooled connection.

Private to store/transfer_repo.py (and _pg_pending.py, _pg_move.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import ARRAY
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.sql import ClauseElement, Select
from sqlalchemy.sql.compiler import SQLCompiler

from paymux.store.db import Counters

_PG = asyncpg_dialect.dialect()  # type: ignore[no-untyped-call]  # (untyped in SQLAlchemy)


def _identity(value: Any) -> Any:
    return value


def _binder(type_: Any) -> Callable[[Any], Any]:
    """What a value of ``type_`` goes through before asyncpg sees it.

    A one-dimensional array's values are lists the repository built: each item goes through
    the item type's processor, or the list goes as it is when the item type has none
    (asyncpg encodes a list of str or int itself). SQLAlchemy's ARRAY processor walks and
    copies every list even then, which was measured at ~1.5 % of the gateway's CPU per
    transfer on the status move's ten arrays.
    """
    if isinstance(type_, ARRAY) and type_.dimensions in (None, 1):
        item = type_.item_type.dialect_impl(_PG).bind_processor(_PG)
        if item is None:
            return _identity

        def each(values: Any) -> Any:
            return None if values is None else [None if v is None else item(v) for v in values]

        return each
    return type_.dialect_impl(_PG).bind_processor(_PG) or _identity


class PgStatement:
    def __init__(self, stmt: ClauseElement) -> None:
        compiled = stmt.compile(dialect=_PG)
        assert isinstance(compiled, SQLCompiler)
        self.sql = str(compiled)
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self.binds: tuple[Callable[[Any], Any], ...] = tuple(
            _binder(compiled.binds[n].type) for n in self.names
        )
        # Literal values in the statement are binds that carry their value.
        self.defaults: dict[str, Any] = {
            name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required
        }
        self.columns: tuple[str, ...] = ()
        self.readers: tuple[Callable[[Any], Any], ...] = ()
        if isinstance(stmt, Select):
            self.columns = tuple(c.name for c in stmt.selected_columns)
            self.readers = tuple(
                c.type.dialect_impl(_PG).result_processor(_PG, None) or _identity
                for c in stmt.selected_columns
            )

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        return [
            bind(params[n] if n in params else self.defaults[n])
            for n, bind in zip(self.names, self.binds, strict=True)
        ]

    async def fetchval(self, conn: Any, params: Mapping[str, Any], counters: Counters) -> Any:
        counters.statement(self.sql)
        return await conn.fetchval(self.sql, *self.args(params))

    async def fetchrow(
        self, conn: Any, params: Mapping[str, Any], counters: Counters
    ) -> dict[str, Any] | None:
        counters.statement(self.sql)
        found = await conn.fetchrow(self.sql, *self.args(params))
        if found is None:
            return None
        return {
            name: read(value)
            for name, read, value in zip(self.columns, self.readers, found, strict=True)
        }
