"""Database schema (SQLAlchemy Core). Alembic migrations under ``migrations/`` create it.

Money columns are BIGINT minor units; there is no float or numeric money column anywhere.
Journal entries and postings are append-only: corrections are new reversing entries.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from paymux.store.sealed import PAYEE_ACCOUNT, SealedText


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps are aware UTC in Python on every backend (SQLite stores naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        parsed: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _ts(name: str, *, nullable: bool = False) -> Column[datetime]:
    return Column(name, UTCDateTime(), nullable=nullable)


merchants = Table(
    "merchants",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    # sha256 of the secret key: the key itself is shown once and never stored.
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_hint", String(16), nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    _ts("created_at"),
)

transfers = Table(
    "transfers",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False),
    Column("idempotency_key", String(255), nullable=False),
    Column("request_fingerprint", String(64), nullable=False),
    Column("status", String(32), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("fee", BigInteger, nullable=False),
    Column("channel_cost", BigInteger, nullable=False),
    Column("price_version", Integer, nullable=True),
    Column("cost_version", Integer, nullable=True),
    Column("payee_type", String(20), nullable=False),
    # Sealed at rest (AES-256-GCM, see sealing.py); equality lookups use the blind index.
    Column("payee_account", SealedText(PAYEE_ACCOUNT), nullable=False),
    Column("payee_name", SealedText("transfers.payee_name"), nullable=True),
    Column("payee_account_hmac", String(64), nullable=True),
    Column("channel", String(32), nullable=False),
    # One Paymux transfer is one channel reference forever (out_biz_no / out_bill_no).
    Column("channel_reference", String(32), nullable=False, unique=True),
    Column("channel_order_id", String(64), nullable=True),
    Column("failure_code", String(64), nullable=True),
    Column("failure_message", String(256), nullable=True),
    # failure_code is Paymux's own (domain.failures); the channel's words stay visible here.
    Column("channel_failure_code", String(64), nullable=True),
    Column("channel_failure_message", String(256), nullable=True),
    # JSON: how the payee confirms (requires_confirmation), e.g. WeChat's package_info.
    Column("next_action", Text, nullable=True),
    Column("description", String(128), nullable=True),
    Column("metadata", Text, nullable=True),
    _ts("created_at"),
    _ts("updated_at"),
    _ts("completed_at", nullable=True),
    _ts("next_sync_at", nullable=True),
    Column("sync_attempts", Integer, nullable=False, default=0),
    UniqueConstraint("merchant_id", "idempotency_key", name="uq_transfers_merchant_idem"),
    Index("ix_transfers_merchant_id_id", "merchant_id", "id"),
    # Held balance = sum of amount + fee of a merchant's transfers in flight; with `id`
    # last, a merchant's transfers in one status also come newest first (dashboard lists).
    Index("ix_transfers_merchant_status_id", "merchant_id", "status", "id"),
    Index("ix_transfers_status_next_sync", "status", "next_sync_at"),
    # Every merchant's transfers in one status, newest first (the operators' dashboard).
    Index("ix_transfers_status_id", "status", "id"),
    Index("ix_transfers_created_at", "created_at"),
    Index("ix_transfers_payee_account_hmac", "payee_account_hmac"),
)

# Cached balances, only for accounts that need a guard (a merchant's `available`); every
# other account's balance is derived from its postings (see store/ledger_repo.py).
accounts = Table(
    "accounts",
    metadata,
    # Stable text key, e.g. "merchant_available:mer_...:CNY" (see domain.ledger.AccountRef).
    Column("key", String(120), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("owner", String(40), nullable=True),
    Column("currency", String(3), nullable=False),
    # A cache of the journal: `paymux ledger check` proves it equals the replay.
    Column("balance", BigInteger, nullable=False, default=0),
)

journal_entries = Table(
    "journal_entries",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("merchant_id", String(40), nullable=True),
    Column("transfer_id", String(40), nullable=True),
    Column("topup_id", String(40), nullable=True),
    Column("currency", String(3), nullable=False),
    _ts("created_at"),
    Index("ix_journal_entries_merchant_id_id", "merchant_id", "id"),
    Index("ix_journal_entries_transfer_id", "transfer_id"),
    Index("ix_journal_entries_created_at", "created_at"),
)

postings = Table(
    "postings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("entry_id", String(40), ForeignKey("journal_entries.id"), nullable=False),
    # No foreign key: house and channel accounts need no row (their balance is derived from
    # postings), so a channel added later posts without a set-up step.
    Column("account_key", String(120), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Index("ix_postings_entry_id", "entry_id"),
    Index("ix_postings_account_key", "account_key"),
)

topups = Table(
    "topups",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False),
    Column("idempotency_key", String(255), nullable=False),
    Column("request_fingerprint", String(64), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("description", String(128), nullable=True),
    _ts("created_at"),
    UniqueConstraint("merchant_id", "idempotency_key", name="uq_topups_merchant_idem"),
)

fee_rules = Table(
    "fee_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(8), nullable=False),  # price | cost
    Column("merchant_id", String(40), nullable=True),
    Column("channel", String(32), nullable=False),
    Column("payee_type", String(20), nullable=False),
    Column("bps", String(20), nullable=False),  # Decimal text: exact, never float
    Column("fixed", BigInteger, nullable=False),
    Column("minimum", BigInteger, nullable=False),
    Column("maximum", BigInteger, nullable=True),
    _ts("effective_at"),
    _ts("created_at"),
)

# Transactional outbox: written in the same transaction as the change it reports.
events = Table(
    "events",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", String(40), nullable=False),
    Column("type", String(40), nullable=False),
    Column("object_id", String(40), nullable=False),
    Column("payload", Text, nullable=False),
    _ts("created_at"),
    # Null until the relay has handed the event to the delivery schedule.
    _ts("relayed_at", nullable=True),
    Index("ix_events_merchant_id_id", "merchant_id", "id"),
    Index("ix_events_relayed_at", "relayed_at"),
)

channel_notifications = Table(
    "channel_notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel", String(32), nullable=False),
    Column("reference", String(64), nullable=True),
    Column("verified", Boolean, nullable=False),
    Column("result", String(32), nullable=False),
    Column("detail", String(256), nullable=True),
    Column("body", Text, nullable=False),
    _ts("received_at"),
    Index("ix_channel_notifications_reference", "reference"),
)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("event_types", Text, nullable=False),  # JSON list; ["*"] = all
    Column("description", String(256), nullable=True),
    Column("enabled", Boolean, nullable=False, default=True),
    _ts("created_at"),
    _ts("updated_at"),
    # Soft delete: deliveries and attempts keep pointing at the row.
    _ts("deleted_at", nullable=True),
    Index("ix_webhook_endpoints_merchant_id", "merchant_id"),
)

webhook_secrets = Table(
    "webhook_secrets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("endpoint_id", String(40), ForeignKey("webhook_endpoints.id"), nullable=False),
    # The signing key must be usable, so it is stored (sealed); never returned after creation.
    Column("secret", SealedText("webhook_secrets.secret"), nullable=False),
    _ts("created_at"),
    _ts("expires_at", nullable=True),  # set when rotated out: signs until then
    Index("ix_webhook_secrets_endpoint_id", "endpoint_id"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("event_id", String(40), ForeignKey("events.id"), nullable=False),
    Column("endpoint_id", String(40), ForeignKey("webhook_endpoints.id"), nullable=False),
    Column("status", String(16), nullable=False),  # pending | succeeded | failed
    Column("attempts", Integer, nullable=False, default=0),
    _ts("created_at"),
    _ts("updated_at"),
    _ts("next_attempt_at", nullable=True),
    Index("ix_webhook_deliveries_event_id", "event_id"),
    Index("ix_webhook_deliveries_endpoint_id", "endpoint_id"),
    # The relay's reconciliation pass looks for overdue pending deliveries.
    Index("ix_webhook_deliveries_status_next_attempt", "status", "next_attempt_at"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", String(40), ForeignKey("webhook_deliveries.id"), nullable=False),
    Column("endpoint_id", String(40), nullable=False),
    Column("event_id", String(40), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("latency_ms", Integer, nullable=False),
    Column("response_excerpt", Text, nullable=True),
    Column("error", String(256), nullable=True),
    _ts("created_at"),
    Index("ix_webhook_attempts_endpoint_id_id", "endpoint_id", "id"),
)
