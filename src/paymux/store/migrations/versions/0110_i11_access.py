"""API keys, operators, rate limits, audit log, data keys; sealed payee and secret columns

Revision ID: 0110_i11_access
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0110_i11_access"
down_revision: str | None = "0100_i12_lifecycle"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "operators",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(10), nullable=False),
        _ts("created_at"),
        _ts("disabled_at", True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operators")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("merchant_id", sa.String(40), nullable=True),
        sa.Column("operator_id", sa.String(40), nullable=True),
        sa.Column("name", sa.String(100), nullable=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        _ts("created_at"),
        _ts("expires_at", True),
        _ts("revoked_at", True),
        sa.Column("created_by", sa.String(40), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_api_keys_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_api_keys_operator_id_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index("ix_api_keys_merchant_id", "api_keys", ["merchant_id"])
    op.create_index("ix_api_keys_operator_id", "api_keys", ["operator_id"])
    op.create_table(
        "merchant_rate_limits",
        sa.Column("merchant_id", sa.String(40), nullable=False),
        sa.Column("per_second", sa.Integer(), nullable=False),
        sa.Column("burst", sa.Integer(), nullable=False),
        _ts("updated_at"),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_merchant_rate_limits_merchant_id_merchants"),
        ),
        sa.PrimaryKeyConstraint("merchant_id", name=op.f("pk_merchant_rate_limits")),
    )
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("occurred_at", sa.String(40), nullable=False),
        sa.Column("actor_key_id", sa.String(40), nullable=True),
        sa.Column("actor_kind", sa.String(10), nullable=False),
        sa.Column("actor_role", sa.String(10), nullable=True),
        sa.Column("actor_merchant_id", sa.String(40), nullable=True),
        sa.Column("action", sa.String(60), nullable=False),
        sa.Column("object_type", sa.String(40), nullable=False),
        sa.Column("object_id", sa.String(80), nullable=True),
        sa.Column("merchant_id", sa.String(40), nullable=True),
        sa.Column("before", sa.Text(), nullable=True),
        sa.Column("after", sa.Text(), nullable=True),
        sa.Column("request_id", sa.String(200), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_events")),
        sa.UniqueConstraint("id", name=op.f("uq_audit_events_id")),
    )
    op.create_index("ix_audit_events_merchant_id_seq", "audit_events", ["merchant_id", "seq"])
    op.create_index("ix_audit_events_object_id", "audit_events", ["object_id"])
    op.create_table(
        "data_keys",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("kek_id", sa.String(40), nullable=False),
        sa.Column("wrapped", sa.String(200), nullable=False),
        sa.Column("active", sa.Integer(), nullable=False),
        _ts("created_at"),
        _ts("rewrapped_at", True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_keys")),
    )
    with op.batch_alter_table("transfers") as batch:
        batch.add_column(sa.Column("payee_account_hmac", sa.String(64), nullable=True))
        batch.create_index("ix_transfers_payee_account_hmac", ["payee_account_hmac"])
    if op.get_bind().dialect.name != "sqlite":  # SQLite does not enforce VARCHAR lengths
        # Sealed values are longer than the plaintext they hold.
        op.alter_column("transfers", "payee_account", type_=sa.Text())
        op.alter_column("transfers", "payee_name", type_=sa.Text())
        op.alter_column("webhook_secrets", "secret", type_=sa.Text())
    # Every existing merchant key becomes that merchant's first (unrestricted) API key.
    op.execute(
        """
        INSERT INTO api_keys (id, kind, merchant_id, operator_id, name, prefix, key_hash,
                              scopes, created_at, expires_at, revoked_at, created_by)
        SELECT 'key_' || id, 'merchant', id, NULL, 'default', substr(key_hint, 1, 7),
               key_hash, '["*"]', created_at, NULL,
               CASE WHEN active THEN NULL ELSE created_at END, NULL
        FROM merchants
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("transfers") as batch:
        batch.drop_index("ix_transfers_payee_account_hmac")
        batch.drop_column("payee_account_hmac")
    for table in ("data_keys", "audit_events", "merchant_rate_limits", "api_keys", "operators"):
        op.drop_table(table)
