"""Helpers shared by test modules (fixtures live in conftest.py files)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path


def reset_postgres(url: str) -> None:
    """Empty the test database's public schema (the suite owns database `test`)."""
    from sqlalchemy import text  # noqa: PLC0415
    from sqlalchemy.ext.asyncio import create_async_engine  # noqa: PLC0415

    async def _reset() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        await engine.dispose()

    asyncio.run(_reset())


def fresh_database_url(tmp: Path) -> str:
    url = os.environ.get("PAYMUX_TEST_DATABASE_URL")
    if url:
        reset_postgres(url)
        return url
    return f"sqlite+aiosqlite:///{tmp / 'paymux.db'}"
