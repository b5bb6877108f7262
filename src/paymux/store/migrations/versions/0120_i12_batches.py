"""batch payouts: transfer_batches and transfer_batch_items

Revision ID: 0120_i12_batches
Revises: 0110_i11_access
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0120_i12_batches"
down_revision: str | None = "0110_i11_access"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "transfer_batches",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("all_or_nothing", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_transfer_batches_merchant_id_merchants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfer_batches")),
        sa.UniqueConstraint(
            "merchant_id", "idempotency_key", name="uq_transfer_batches_merchant_idem"
        ),
    )
    op.create_index("ix_transfer_batches_status", "transfer_batches", ["status"])
    op.create_table(
        "transfer_batch_items",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("batch_id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("transfer_id", sa.String(length=40), nullable=True),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["transfer_batches.id"],
            name=op.f("fk_transfer_batch_items_batch_id_transfer_batches"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfer_batch_items")),
        sa.UniqueConstraint("batch_id", "seq", name="uq_transfer_batch_items_batch_seq"),
        sa.UniqueConstraint("batch_id", "reference", name="uq_transfer_batch_items_batch_ref"),
    )
    op.create_index(
        "ix_transfer_batch_items_batch_state", "transfer_batch_items", ["batch_id", "state"]
    )
    op.create_index("ix_transfer_batch_items_transfer_id", "transfer_batch_items", ["transfer_id"])


def downgrade() -> None:
    op.drop_index("ix_transfer_batch_items_transfer_id", table_name="transfer_batch_items")
    op.drop_index("ix_transfer_batch_items_batch_state", table_name="transfer_batch_items")
    op.drop_table("transfer_batch_items")
    op.drop_index("ix_transfer_batches_status", table_name="transfer_batches")
    op.drop_table("transfer_batches")
