"""A failing statement's error must not carry its parameters: SQLAlchemy appends
``[parameters: ...]`` (full payee accounts and names) to the message unless the engine is
created with ``hide_parameters=True``, and that message ends up in logs."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, StatementError

from paymux.store.tables import transfers

pytestmark = pytest.mark.store


def incomplete_transfer(secret: str) -> Any:
    # NOT NULL columns left out: the database refuses the row with an error.
    return transfers.insert().values(
        id="tr_" + uuid.uuid4().hex[:20], payee_account=secret, payee_name=secret
    )


async def test_async_engine_errors_hide_parameters(gw: Any) -> None:
    secret = "6222020200" + uuid.uuid4().hex[:9]
    with pytest.raises((DBAPIError, StatementError)) as caught:
        async with gw.db.write() as conn:
            await conn.execute(incomplete_transfer(secret))
    assert secret not in str(caught.value)
    assert "parameters hidden" in str(caught.value)


async def test_writer_engine_errors_hide_parameters(gw: Any) -> None:
    secret = "o4Gga" + uuid.uuid4().hex

    def write(conn: Connection) -> None:
        conn.execute(incomplete_transfer(secret))

    with pytest.raises((DBAPIError, StatementError)) as caught:
        await gw.db.run_write(write)
    assert secret not in str(caught.value)
