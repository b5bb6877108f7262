"""Ledger digests: a sealed business day cannot be rewritten unseen.

An edit of one past posting made directly in the database (kept balanced, on accounts
without a cached balance, so no other check can see it) makes ``paymux ledger check``
fail and name the day and the entry.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select, update

from paymux.domain.outcomes import Outcome
from paymux.service.gateway import Gateway, utcnow
from paymux.service.ledger_digests import seal_days
from paymux.settings import Settings
from paymux.store.reconciliation_tables import ledger_digest_leaves, ledger_digests
from paymux.store.tables import journal_entries, postings
from tests.store.store_support import new_funded_merchant, transfer
from tests.store.test_store_ledger_check_cli import ledger_check

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = date(2034, 2, 3)


async def test_editing_a_sealed_posting_is_named_by_ledger_check(
    gw: Gateway, store_settings: Settings
) -> None:
    try:
        gw.clock = lambda: datetime(2034, 2, 3, 9, tzinfo=SHANGHAI)
        merchant = await new_funded_merchant(gw, 100_000, "digest")
        settled = await transfer(gw, merchant, 12_345, Outcome.SUCCEEDED)
    finally:
        gw.clock = utcnow
    sealed = await seal_days(gw, through=DAY, start=DAY)
    assert [d.day for d in sealed] == [DAY.isoformat()]
    assert sealed[0].entries == 3  # top-up, hold, settle
    fee_key, clearing_key = "fee_revenue:CNY", "channel_clearing:alipay:CNY"
    async with gw.db.read() as conn:
        entry_id = (
            await conn.execute(
                select(journal_entries.c.id).where(
                    journal_entries.c.transfer_id == settled.transfer.id,
                    journal_entries.c.kind == "settle",
                )
            )
        ).scalar_one()
    try:
        sound = await ledger_check(store_settings)
        assert sound.returncode == 0, sound.stdout + sound.stderr
        # Skim one fen of fee into clearing: balanced, no cached balance touched.
        async with gw.db.write() as conn:
            for key, change in ((fee_key, -1), (clearing_key, +1)):
                await conn.execute(
                    update(postings)
                    .where(postings.c.entry_id == entry_id, postings.c.account_key == key)
                    .values(amount=postings.c.amount + change)
                )
        broken = await ledger_check(store_settings)
        assert broken.returncode == 1, broken.stdout + broken.stderr
        assert f"ledger day {DAY.isoformat()}: entry {entry_id}" in broken.stdout
        assert "edited" in broken.stdout
    finally:
        async with gw.db.write() as conn:
            for key, change in ((fee_key, +1), (clearing_key, -1)):
                await conn.execute(
                    update(postings)
                    .where(postings.c.entry_id == entry_id, postings.c.account_key == key)
                    .values(amount=postings.c.amount + change)
                )
            # Other store tests write entries on days of their own choosing: unseal.
            await conn.execute(delete(ledger_digest_leaves))
            await conn.execute(delete(ledger_digests))
