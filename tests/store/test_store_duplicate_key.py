"""Regression: a racing duplicate idempotency key reaches the create path's replay branch.

On SQLite the hot path executes on the raw sqlite3 connection, whose IntegrityError used
to escape ``except sqlalchemy.exc.IntegrityError``: the second request with a key the
database already holds (e.g. a batch item re-sent in a new batch) failed instead of
returning the first transfer.
"""

from __future__ import annotations

import uuid

from paymux.service.gateway import Gateway
from paymux.service.transfers import NewTransfer, create_transfer
from tests.store.store_support import new_funded_merchant


async def test_same_key_twice_in_the_database_replays(gw: Gateway) -> None:
    merchant = await new_funded_merchant(gw, 1_000_000)
    key = uuid.uuid4().hex
    req = NewTransfer(
        amount=500,
        currency="CNY",
        payee_type="alipay_account",
        payee_account="dup@example.com",
        payee_name=None,
        channel=None,
        description=None,
    )
    first = await create_transfer(gw, merchant, key, "fp", req)
    again = await create_transfer(gw, merchant, key, "fp", req)
    assert not first.replayed
    assert again.replayed
    assert again.transfer.id == first.transfer.id
