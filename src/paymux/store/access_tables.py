"""Tables of API keys, operators, per-merchant rate limits, the audit log and data keys."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, String, Table, Text

from paymux.store.tables import _ts, metadata

# Merchant keys and operator keys. Only a SHA-256 of the secret is stored; the prefix is
# the first characters of the key, shown in lists so a person can tell keys apart.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("kind", String(10), nullable=False),  # merchant | operator
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=True),
    Column("operator_id", String(40), ForeignKey("operators.id"), nullable=True),
    Column("name", String(100), nullable=True),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("scopes", Text, nullable=False),  # JSON list; ["*"] = unrestricted
    _ts("created_at"),
    _ts("expires_at", nullable=True),  # set when rolled: works until then
    _ts("revoked_at", nullable=True),
    Column("created_by", String(40), nullable=True),  # key id of whoever created it
    Index("ix_api_keys_merchant_id", "merchant_id"),
    Index("ix_api_keys_operator_id", "operator_id"),
)

operators = Table(
    "operators",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(10), nullable=False),  # viewer | operator | admin
    _ts("created_at"),
    _ts("disabled_at", nullable=True),
)

merchant_rate_limits = Table(
    "merchant_rate_limits",
    metadata,
    Column("merchant_id", String(40), ForeignKey("merchants.id"), primary_key=True),
    Column("per_second", Integer, nullable=False),
    Column("burst", Integer, nullable=False),
    _ts("updated_at"),
)

# Append-only; `hash` chains each record to the one before (domain/audit_chain.py).
audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("id", String(40), nullable=False, unique=True),
    Column("occurred_at", String(40), nullable=False),  # ISO text: hashed exactly as stored
    Column("actor_key_id", String(40), nullable=True),
    Column("actor_kind", String(10), nullable=False),
    Column("actor_role", String(10), nullable=True),
    Column("actor_merchant_id", String(40), nullable=True),
    Column("action", String(60), nullable=False),
    Column("object_type", String(40), nullable=False),
    Column("object_id", String(80), nullable=True),
    Column("merchant_id", String(40), nullable=True),
    Column("before", Text, nullable=True),  # JSON, secrets redacted
    Column("after", Text, nullable=True),
    Column("request_id", String(200), nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_events_merchant_id_seq", "merchant_id", "seq"),
    Index("ix_audit_events_object_id", "object_id"),
)

# Data keys for encryption at rest, stored only wrapped by a key-encryption key.
data_keys = Table(
    "data_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("kek_id", String(40), nullable=False),
    Column("wrapped", String(200), nullable=False),
    Column("active", Integer, nullable=False),
    _ts("created_at"),
    _ts("rewrapped_at", nullable=True),
)
