"""Tables of batch payouts (``POST /v1/transfer_batches``), on the shared MetaData."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
)

from paymux.store.sealed import SealedText
from paymux.store.tables import UTCDateTime, metadata

transfer_batches = Table(
    "transfer_batches",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False),
    Column("idempotency_key", String(255), nullable=False),
    Column("request_fingerprint", String(64), nullable=False),
    Column("all_or_nothing", Boolean, nullable=False),
    Column("status", String(16), nullable=False),  # processing | completed
    Column("item_count", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("completed_at", UTCDateTime(), nullable=True),
    UniqueConstraint("merchant_id", "idempotency_key", name="uq_transfer_batches_merchant_idem"),
    Index("ix_transfer_batches_status", "status"),
)

transfer_batch_items = Table(
    "transfer_batch_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("batch_id", String(40), ForeignKey("transfer_batches.id"), nullable=False),
    Column("merchant_id", String(40), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("reference", String(64), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    # The item's transfer body (JSON): it names the payee, so it is sealed at rest.
    Column("body", SealedText("transfer_batch_items.body"), nullable=False),
    # queued | dispatching | submitted | failed | canceled (domain.batches.ItemState)
    Column("state", String(16), nullable=False),
    Column("transfer_id", String(40), nullable=True),
    Column("failure_code", String(64), nullable=True),
    # A worker's claim on a dispatching item; after it passes another worker may retry,
    # which is safe: the item's transfer and channel reference never change.
    Column("claimed_until", UTCDateTime(), nullable=True),
    UniqueConstraint("batch_id", "seq", name="uq_transfer_batch_items_batch_seq"),
    UniqueConstraint("batch_id", "reference", name="uq_transfer_batch_items_batch_ref"),
    Index("ix_transfer_batch_items_batch_state", "batch_id", "state"),
    Index("ix_transfer_batch_items_transfer_id", "transfer_id"),
)
