"""Ledger digests: one Merkle root per business day, chained to the previous day's digest.

History that cannot be rewritten unseen: once a day is sealed, editing, deleting or adding
any of its journal entries or postings (even directly in the database) changes a leaf, so
the root no longer matches; rewriting a stored digest breaks the chain to every later day,
and the digest printed on merchants' statements no longer matches either.

Pure: the store hands entries over as plain values.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class EntryFacts:
    """A journal entry with its postings, as stored."""

    id: str
    kind: str
    merchant_id: str | None
    transfer_id: str | None
    topup_id: str | None
    currency: str
    created_at: str  # ISO 8601, UTC, microseconds
    postings: tuple[tuple[str, int], ...]  # (account key, amount)


def leaf(entry: EntryFacts) -> str:
    """SHA-256 of a canonical text of the entry and every posting (sorted)."""
    postings = ";".join(f"{key}={amount}" for key, amount in sorted(entry.postings))
    text = "|".join(
        (
            entry.id,
            entry.kind,
            entry.merchant_id or "",
            entry.transfer_id or "",
            entry.topup_id or "",
            entry.currency,
            entry.created_at,
            postings,
        )
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def merkle_root(leaves: Sequence[str]) -> str:
    """Pairwise SHA-256 up to one root (an odd node is paired with itself)."""
    if not leaves:
        return hashlib.sha256(b"").hexdigest()
    level = [bytes.fromhex(h) for h in leaves]
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [
            hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest()
            for i in range(0, len(level), 2)
        ]
    return level[0].hex()


def chain(day: str, entries: int, root: str, previous: str) -> str:
    """The day's digest: its root bound to the day, its size and the previous digest."""
    return hashlib.sha256(f"{day}|{entries}|{root}|{previous}".encode()).hexdigest()
