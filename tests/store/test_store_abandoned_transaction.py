"""A transaction its client abandoned must not hold a transfer's row lock for ever.

Found by the chaos suite (docs/RELIABILITY.md, "Open finding", seed 459854): a replica's
sync loop sent a parked transfer, and the PostgreSQL blackhole swallowed the COMMIT of the
transaction that recorded the outcome (its UPDATE of the transfer had run). The server kept
that session "idle in transaction", holding the transfer's row lock, long after the client
had given up (a server learns of a silent peer only from TCP keepalive: hours). Every later
claim of the row by any replica's sync loop then hit the statement timeout, so the transfer
stayed ``pending`` for good; each failed claim also failed the whole sync pass.

The gateway's sessions now carry ``idle_in_transaction_session_timeout``: the server ends a
transaction whose client went silent and releases its locks, and one row that cannot be
claimed no longer fails the pass for the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from paymux.channels.base import Outcome
from paymux.domain.circuit import CircuitPolicy, CircuitState
from paymux.service.bootstrap import build_gateway, close_gateway
from paymux.service.circuits import ChannelCircuits
from paymux.service.gateway import Gateway, utcnow
from paymux.service.sync import sync_once
from paymux.settings import Settings
from paymux.store.tables import transfers
from tests.store.store_support import fake_channels, new_funded_merchant, transfer

pytestmark = pytest.mark.skipif(
    not os.environ.get("PAYMUX_TEST_DATABASE_URL"),
    reason="PostgreSQL only (CI's second pass): SQLite writes run in one hop, never left open",
)


async def _status(gw: Gateway, transfer_id: str) -> str:
    async with gw.db.read() as conn:
        row = await conn.execute(select(transfers.c.status).where(transfers.c.id == transfer_id))
        return str(row.scalar_one())


async def test_a_transfer_locked_by_an_abandoned_transaction_is_still_sent(
    gw: Gateway, store_settings: Settings
) -> None:
    del gw  # the session gateway has migrated the database; this test runs a replica of its own
    replica = await build_gateway(
        store_settings.model_copy(
            update={
                "database_statement_timeout_seconds": 1.0,
                "database_idle_in_transaction_timeout_seconds": 1.0,
            }
        ),
        migrate=False,
    )
    channels = fake_channels()
    replica.channels = channels
    # The channel's circuit is open: the transfer is parked (pending, queued for the sync loop).
    ticks = [0.0]
    circuits = ChannelCircuits(CircuitPolicy(failure_threshold=1, open_seconds=5), lambda: ticks[0])
    circuits.record_fault("alipay")
    assert circuits.state("alipay") is CircuitState.open
    replica.circuits = circuits
    abandoned = await replica.db.engine.connect()
    try:
        merchant_id = await new_funded_merchant(replica, 1_000_000)
        parked = (await transfer(replica, merchant_id, 1500, Outcome.SUCCEEDED)).transfer
        assert parked.status == "pending" and parked.next_sync_at is not None
        transfer_id = parked.id

        # A replica's transaction wrote the row, then its client went silent: no COMMIT, no
        # ROLLBACK, the session left open (as behind a blackholed network or a dead peer).
        await abandoned.begin()
        await abandoned.execute(
            update(transfers)
            .where(transfers.c.id == transfer_id)
            .values(updated_at=transfers.c.updated_at)
        )

        ticks[0] = 5.0  # the circuit may probe now
        replica.clock = lambda: utcnow() + timedelta(seconds=6)  # and the parked send is due
        deadline = time.monotonic() + 15
        status = "pending"
        while status == "pending" and time.monotonic() < deadline:
            await sync_once(replica)  # never fails the pass for one locked row
            status = await _status(replica, transfer_id)
            await asyncio.sleep(0.2)
        assert status == "succeeded"
        assert channels["alipay"].sent.count(parked.channel_reference) == 1
    finally:
        with contextlib.suppress(Exception):  # the server ended its session
            await abandoned.close()
        await close_gateway(replica)
