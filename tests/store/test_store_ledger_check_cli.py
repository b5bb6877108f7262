"""`paymux ledger check` as an operator runs it: a subprocess against the live database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from sqlalchemy import select, update

from paymux.domain.outcomes import Outcome
from paymux.service.gateway import Gateway
from paymux.settings import Settings
from paymux.store.tables import accounts, journal_entries, postings
from tests.store.store_support import new_funded_merchant, transfer


async def ledger_check(settings: Settings) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMUX_")} | {
        "PAYMUX_DATABASE_URL": settings.database_url,
        "PAYMUX_LOG_LEVEL": "warning",
    }

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "paymux", "ledger", "check"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return await asyncio.to_thread(run)


async def test_ledger_check_passes_then_names_each_break(
    gw: Gateway, store_settings: Settings
) -> None:
    merchant = await new_funded_merchant(gw, 100_000, "ledger check")
    created = await transfer(gw, merchant, 12_345, Outcome.SUCCEEDED)
    await transfer(gw, merchant, 2_000, Outcome.RETURNED)
    await transfer(gw, merchant, 3_000, Outcome.FAILED)

    sound = await ledger_check(store_settings)
    assert sound.returncode == 0, sound.stdout + sound.stderr
    assert "ledger OK" in sound.stdout

    available_key = f"merchant_available:{merchant}:CNY"
    try:
        # A cached balance edited behind the journal's back.
        async with gw.db.write() as conn:
            await conn.execute(
                update(accounts)
                .where(accounts.c.key == available_key)
                .values(balance=accounts.c.balance + 1)
            )
        broken = await ledger_check(store_settings)
        assert broken.returncode == 1, broken.stdout + broken.stderr
        assert f"LEDGER BREAK: account {available_key}" in broken.stdout
        assert "journal replay" in broken.stdout
    finally:
        async with gw.db.write() as conn:
            await conn.execute(
                update(accounts)
                .where(accounts.c.key == available_key)
                .values(balance=accounts.c.balance - 1)
            )
    assert (await ledger_check(store_settings)).returncode == 0

    async with gw.db.read() as conn:
        entry_id = (
            await conn.execute(
                select(journal_entries.c.id).where(
                    journal_entries.c.transfer_id == created.transfer.id,
                    journal_entries.c.kind == "settle",
                )
            )
        ).scalar_one()
    stray: int | None = None
    try:
        # An unbalanced posting slipped into a settled entry.
        async with gw.db.write() as conn:
            inserted = await conn.execute(
                postings.insert().values(entry_id=entry_id, account_key="fee_revenue:CNY", amount=7)
            )
            assert inserted.inserted_primary_key is not None
            stray = int(inserted.inserted_primary_key[0])
        broken = await ledger_check(store_settings)
        assert broken.returncode == 1, broken.stdout + broken.stderr
        assert f"entry {entry_id} sums to 7" in broken.stdout
        assert "postings sum to 7, not 0" in broken.stdout
    finally:
        if stray is not None:
            async with gw.db.write() as conn:
                await conn.execute(postings.delete().where(postings.c.id == stray))
    healed = await ledger_check(store_settings)
    assert healed.returncode == 0, healed.stdout
