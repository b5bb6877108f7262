"""Database errors in our own words, whatever the driver raised.

Statements run through SQLAlchemy and, on the fast paths, straight on the drivers: the bare
``sqlite3`` connection (_sqlite_driver.py) and the bare asyncpg connection (_pg_driver.py). Each
spells a unique violation or a lost connection differently; the service layer must not
care which one ran, so :class:`~paymux.store.db.Database` translates at the edge of every
transaction scope:

- :class:`UniqueViolation`: a unique constraint refused the write (the whole transaction
  rolled back). The unique (merchant, idempotency key) columns are the final authority on
  "one transfer per key", so callers look up the row that won.
- :class:`DatabaseUnavailable`: the database refused, dropped, or did not answer within the
  configured timeouts. Nothing of the transaction committed; the request may be retried.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy import exc as sa_exc


class StoreError(Exception):
    """Base for errors the store layer raises in its own words."""


class UniqueViolation(StoreError):
    """A unique constraint refused the write; nothing of the transaction was kept."""


class DatabaseUnavailable(StoreError):
    """The database could not be reached or did not answer in time; nothing committed."""


# PostgreSQL SQLSTATE classes: 08 connection exception, 57P0x operator intervention
# (admin shutdown, crash shutdown, cannot connect now), 53300 too many connections,
# 57014 query canceled (our statement_timeout).
_PG_UNAVAILABLE_PREFIXES = ("08", "57P0")
_PG_UNAVAILABLE_CODES = {"53300", "57014", "53000"}
_PG_UNIQUE = "23505"


def _sqlstate(err: BaseException | None) -> str | None:
    if err is None:
        return None
    code = getattr(err, "sqlstate", None) or getattr(err, "pgcode", None)
    return str(code) if code else None


def _is_unique(err: BaseException) -> bool:
    if isinstance(err, sqlite3.IntegrityError):
        # "UNIQUE constraint failed: ..." (a PRIMARY KEY clash says UNIQUE too)
        return "UNIQUE" in str(err).upper()
    if _sqlstate(err) == _PG_UNIQUE:
        return True
    return type(err).__name__ == "UniqueViolationError"  # asyncpg's own class, unwrapped


def _is_unavailable(err: BaseException) -> bool:
    if isinstance(err, (ConnectionError, TimeoutError)):  # OSError refusals, asyncio timeouts
        return True
    if isinstance(err, sqlite3.OperationalError):
        text = str(err).lower()
        # busy_timeout ran out, or the file cannot be opened/written right now
        return any(w in text for w in ("locked", "busy", "unable to open", "disk i/o"))
    code = _sqlstate(err)
    if code and (code.startswith(_PG_UNAVAILABLE_PREFIXES) or code in _PG_UNAVAILABLE_CODES):
        return True
    # asyncpg connection classes (ConnectionDoesNotExistError, CannotConnectNowError, ...)
    return type(err).__name__ in {
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "CannotConnectNowError",
        "InterfaceError",
        "TooManyConnectionsError",
        "QueryCanceledError",
        # The protocol met a connection in a state it cannot use (e.g. the server's goodbye
        # to a terminated session is half-read): that connection is gone for us.
        "InternalClientError",
    }


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        orig = getattr(current, "orig", None)
        current = (
            orig if isinstance(orig, BaseException) else (current.__cause__ or current.__context__)
        )
    return seen


def translate(exc: BaseException) -> StoreError | None:
    """Our error for ``exc`` (a driver or SQLAlchemy error), or None if it is not one we
    translate (a bug, a constraint other than unique, a domain error raised inside)."""
    if isinstance(exc, StoreError):
        return None
    chain = _chain(exc)
    if any(_is_unique(e) for e in chain):
        return UniqueViolation(str(exc).splitlines()[0][:200])
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return DatabaseUnavailable("database connection lost")
    if isinstance(exc, (sa_exc.TimeoutError, sa_exc.DisconnectionError)):  # pool checkout
        return DatabaseUnavailable(type(exc).__name__)
    if any(_is_unavailable(e) for e in chain if not isinstance(e, sa_exc.StatementError)):
        return DatabaseUnavailable(type(chain[-1]).__name__)
    if isinstance(exc, sa_exc.InterfaceError):  # the driver's connection is unusable
        return DatabaseUnavailable(type(exc).__name__)
    return None
