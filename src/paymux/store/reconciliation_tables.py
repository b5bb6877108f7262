"""Tables of reconciliation (对账) runs, their discrepancies, the daily-job claims and the
ledger's per-day digests. On the shared MetaData; created by migration 0130_i8_recon."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text, UniqueConstraint

from paymux.store.tables import UTCDateTime, metadata, transfers

# Reconciliation pages through a channel's transfers completed in a business day.
Index("ix_transfers_channel_completed_at", transfers.c.channel, transfers.c.completed_at)

recon_runs = Table(
    "recon_runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("channel", String(32), nullable=False),
    Column("bill_date", String(10), nullable=False),  # business day, yyyy-mm-dd
    Column("status", String(16), nullable=False),  # completed | failed
    Column("trigger", String(16), nullable=False),  # cli | api | schedule
    Column("statement_path", Text, nullable=True),
    Column("statement_sha256", String(64), nullable=True),
    Column("summary", Text, nullable=False),  # JSON: counts per class, totals per side
    Column("error", Text, nullable=True),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=True),
    Index("ix_recon_runs_channel_bill_date", "channel", "bill_date"),
)

recon_discrepancies = Table(
    "recon_discrepancies",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("channel", String(32), nullable=False),
    Column("bill_date", String(10), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("reference", String(64), nullable=False),
    Column("transfer_id", String(40), nullable=True),
    Column("merchant_id", String(40), nullable=True),
    Column("state", String(16), nullable=False),  # open | resolved
    Column("severity", String(16), nullable=False),  # normal | critical
    Column("statement_amount", BigInteger, nullable=True),
    Column("paymux_amount", BigInteger, nullable=True),
    Column("statement_status", String(32), nullable=True),
    Column("paymux_status", String(32), nullable=True),
    Column("detail", Text, nullable=False),
    Column("evidence", Text, nullable=True),  # JSON: the channel's query answer, healing
    Column("first_run_id", String(40), nullable=False),
    Column("last_run_id", String(40), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("resolved_at", UTCDateTime(), nullable=True),
    Column("resolved_by", String(128), nullable=True),
    Column("resolution", Text, nullable=True),
    # One discrepancy per (channel, day, class, reference): a re-run finds the same row.
    UniqueConstraint("channel", "bill_date", "kind", "reference", name="uq_recon_discrepancy"),
    Index("ix_recon_discrepancies_state", "state"),
    Index("ix_recon_discrepancies_reference", "reference"),
)

# A row per (job, day) claimed by exactly one gateway replica (unique key = the lock).
scheduled_jobs = Table(
    "scheduled_jobs",
    metadata,
    Column("job", String(64), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("claimed_by", String(128), nullable=False),
    Column("claimed_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=True),
)

# One digest per closed business day, chained to the previous day's.
ledger_digests = Table(
    "ledger_digests",
    metadata,
    Column("day", String(10), primary_key=True),
    Column("entries", Integer, nullable=False),
    Column("merkle_root", String(64), nullable=False),
    Column("previous_digest", String(64), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("computed_at", UTCDateTime(), nullable=False),
)

# The leaf hash of every entry of a digested day, so a check names the entry that changed.
ledger_digest_leaves = Table(
    "ledger_digest_leaves",
    metadata,
    Column("day", String(10), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("entry_id", String(40), nullable=False),
    Column("leaf", String(64), nullable=False),
)
