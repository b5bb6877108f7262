"""reconciliation runs, discrepancies, scheduled-job claims, ledger digests

Revision ID: 0130_i8_recon
Revises: 0120_i12_batches
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0130_i8_recon"
down_revision: str | None = "0120_i12_batches"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_index("ix_transfers_channel_completed_at", "transfers", ["channel", "completed_at"])
    op.create_table(
        "recon_runs",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("bill_date", sa.String(10), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("statement_path", sa.Text(), nullable=True),
        sa.Column("statement_sha256", sa.String(64), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _ts("started_at"),
        _ts("finished_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_runs")),
    )
    op.create_index("ix_recon_runs_channel_bill_date", "recon_runs", ["channel", "bill_date"])
    op.create_table(
        "recon_discrepancies",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("bill_date", sa.String(10), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("reference", sa.String(64), nullable=False),
        sa.Column("transfer_id", sa.String(40), nullable=True),
        sa.Column("merchant_id", sa.String(40), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("statement_amount", sa.BigInteger(), nullable=True),
        sa.Column("paymux_amount", sa.BigInteger(), nullable=True),
        sa.Column("statement_status", sa.String(32), nullable=True),
        sa.Column("paymux_status", sa.String(32), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=True),
        sa.Column("first_run_id", sa.String(40), nullable=False),
        sa.Column("last_run_id", sa.String(40), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("resolved_at", nullable=True),
        sa.Column("resolved_by", sa.String(128), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_discrepancies")),
        sa.UniqueConstraint(
            "channel", "bill_date", "kind", "reference", name="uq_recon_discrepancy"
        ),
    )
    op.create_index("ix_recon_discrepancies_state", "recon_discrepancies", ["state"])
    op.create_index("ix_recon_discrepancies_reference", "recon_discrepancies", ["reference"])
    op.create_table(
        "scheduled_jobs",
        sa.Column("job", sa.String(64), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("claimed_by", sa.String(128), nullable=False),
        _ts("claimed_at"),
        _ts("finished_at", nullable=True),
        sa.PrimaryKeyConstraint("job", "day", name=op.f("pk_scheduled_jobs")),
    )
    op.create_table(
        "ledger_digests",
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("merkle_root", sa.String(64), nullable=False),
        sa.Column("previous_digest", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        _ts("computed_at"),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_ledger_digests")),
    )
    op.create_table(
        "ledger_digest_leaves",
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.String(40), nullable=False),
        sa.Column("leaf", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("day", "position", name=op.f("pk_ledger_digest_leaves")),
    )


def downgrade() -> None:
    op.drop_index("ix_transfers_channel_completed_at", table_name="transfers")
    op.drop_table("ledger_digest_leaves")
    op.drop_table("ledger_digests")
    op.drop_table("scheduled_jobs")
    op.drop_index("ix_recon_discrepancies_reference", table_name="recon_discrepancies")
    op.drop_index("ix_recon_discrepancies_state", table_name="recon_discrepancies")
    op.drop_table("recon_discrepancies")
    op.drop_index("ix_recon_runs_channel_bill_date", table_name="recon_runs")
    op.drop_table("recon_runs")
