"""channel_calls, and the indexes the dashboard's timeline, search and filters read by

Revision ID: 0140_i10_dashboard
Revises: 0130_i8_recon
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0140_i10_dashboard"
down_revision: str | None = "0130_i8_recon"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channel_calls",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("transfer_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("channel_status", sa.String(length=64), nullable=True),
        sa.Column("channel_code", sa.String(length=64), nullable=True),
        sa.Column("channel_message", sa.String(length=256), nullable=True),
        sa.Column("channel_order_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_calls")),
    )
    op.create_index("ix_channel_calls_transfer_id", "channel_calls", ["transfer_id"])
    # Timeline: a transfer's events, and each delivery's attempts.
    op.create_index("ix_events_object_id", "events", ["object_id"])
    op.create_index("ix_webhook_attempts_delivery_id", "webhook_attempts", ["delivery_id"])
    # Search by the channel's own order id.
    op.create_index("ix_transfers_channel_order_id", "transfers", ["channel_order_id"])
    # A status filter, newest first, without scanning every transfer: (status, id) for all
    # merchants; the merchant's (merchant_id, status) index gains `id` (same write cost).
    op.create_index("ix_transfers_status_id", "transfers", ["status", "id"])
    op.create_index("ix_transfers_merchant_status_id", "transfers", ["merchant_id", "status", "id"])
    op.drop_index("ix_transfers_merchant_status", table_name="transfers")


def downgrade() -> None:
    op.create_index("ix_transfers_merchant_status", "transfers", ["merchant_id", "status"])
    op.drop_index("ix_transfers_merchant_status_id", table_name="transfers")
    op.drop_index("ix_transfers_status_id", table_name="transfers")
    op.drop_index("ix_transfers_channel_order_id", table_name="transfers")
    op.drop_index("ix_webhook_attempts_delivery_id", table_name="webhook_attempts")
    op.drop_index("ix_events_object_id", table_name="events")
    op.drop_index("ix_channel_calls_transfer_id", table_name="channel_calls")
    op.drop_table("channel_calls")
