"""transfer lifecycle: requires_confirmation / canceled statuses, channel failure fields,
next_action

Revision ID: 0100_i12_lifecycle
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0100_i12_lifecycle"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch mode: SQLite rebuilds the table, PostgreSQL alters in place.
    with op.batch_alter_table("transfers") as batch:
        batch.alter_column("status", existing_type=sa.String(length=16), type_=sa.String(length=32))
        batch.add_column(sa.Column("channel_failure_code", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("channel_failure_message", sa.String(length=256), nullable=True))
        batch.add_column(sa.Column("next_action", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("transfers") as batch:
        batch.drop_column("next_action")
        batch.drop_column("channel_failure_message")
        batch.drop_column("channel_failure_code")
        batch.alter_column("status", existing_type=sa.String(length=32), type_=sa.String(length=16))
