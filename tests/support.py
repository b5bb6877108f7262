"""Helpers shared by test modules (fixtures live in conftest.py files)."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

# Databases this test run created on the PostgreSQL server, dropped at session end.
CREATED_DATABASES: list[str] = []


async def _admin(url: str, statement: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


def _run_admin(url: str, statement: str) -> None:
    asyncio.run(_admin(url, statement))


def _new_name(base_url: str) -> tuple[str, str]:
    name = f"paymux_t_{uuid.uuid4().hex[:16]}"
    CREATED_DATABASES.append(name)
    return name, make_url(base_url).set(database=name).render_as_string(hide_password=False)


def fresh_postgres_database(base_url: str) -> str:
    """A new, empty database on the server of ``base_url`` (whose database, `test`, is used
    only to issue CREATE DATABASE), so concurrently running stacks never share tables."""
    name, url = _new_name(base_url)
    _run_admin(base_url, f'CREATE DATABASE "{name}"')
    return url


def drop_created_databases(base_url: str) -> None:
    while CREATED_DATABASES:
        name = CREATED_DATABASES.pop()
        try:
            _run_admin(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except Exception as exc:  # best effort: never fail the run while cleaning up
            print(f"could not drop test database {name}: {exc}")


async def fresh_database_url_async(tmp: Path) -> str:
    """:func:`fresh_database_url` for code already running in an event loop."""
    base = os.environ.get("PAYMUX_TEST_DATABASE_URL")
    if not base:
        return f"sqlite+aiosqlite:///{tmp / 'paymux.db'}"
    name, url = _new_name(base)
    await _admin(base, f'CREATE DATABASE "{name}"')
    return url


def fresh_database_url(tmp: Path) -> str:
    """A fresh database for one stack or test: PostgreSQL when PAYMUX_TEST_DATABASE_URL is
    set (CI's second pass), else a SQLite file under ``tmp``."""
    url = os.environ.get("PAYMUX_TEST_DATABASE_URL")
    if url:
        return fresh_postgres_database(url)
    return f"sqlite+aiosqlite:///{tmp / 'paymux.db'}"
