"""The audit log's hash chain (pure): each record's hash covers its content and the hash of
the record before it, so editing, deleting or reordering any record breaks every later link.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

GENESIS = "0" * 64

# The fields a record's hash covers, in a fixed order (the seq pins its position).
CHAINED_FIELDS = (
    "seq",
    "id",
    "occurred_at",
    "actor_key_id",
    "actor_kind",
    "actor_role",
    "actor_merchant_id",
    "action",
    "object_type",
    "object_id",
    "merchant_id",
    "before",
    "after",
    "request_id",
    "prev_hash",
)


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 over the canonical JSON of the chained fields (sorted keys, no spacing)."""
    content = {name: record.get(name) for name in CHAINED_FIELDS}
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


def first_break(records: Iterable[Mapping[str, Any]]) -> tuple[int, str] | None:
    """The seq of the first record that does not chain, and why; None if all chain.

    ``records`` must be in seq order, starting at the first record ever written.
    """
    prev = GENESIS
    expected_seq = 1
    for rec in records:
        seq = int(rec["seq"])
        if seq != expected_seq:
            return seq, f"expected record {expected_seq}, found {seq} (a record is missing)"
        if rec["prev_hash"] != prev:
            return seq, "prev_hash does not match the previous record's hash"
        if rec["hash"] != record_hash(rec):
            return seq, "the record's content does not match its hash"
        prev = rec["hash"]
        expected_seq += 1
    return None
