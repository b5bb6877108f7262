"""Batch payouts: the rules of a batch and of its items (pure).

An item is one transfer body plus the merchant's ``reference``, which is that item's
idempotency key: the item's transfer is created under it, so a retried batch or an item
re-sent in another batch maps to the same transfer and never pays twice.

An item's life: ``queued`` → ``dispatching`` (claimed by a worker, lease-bound) →
``submitted`` (its transfer exists and was handed to the channel); or ``failed`` (refused
before any transfer existed, e.g. ``insufficient_funds``) or ``canceled`` (canceled before
it was sent). Once submitted, what the item reports is its transfer's status.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from paymux.domain.states import TransferStatus, is_final

MAX_ITEMS = 1000
MAX_REFERENCE_CHARS = 64


class ItemState(enum.StrEnum):
    queued = "queued"
    dispatching = "dispatching"
    submitted = "submitted"
    failed = "failed"
    canceled = "canceled"


class BatchStatus(enum.StrEnum):
    processing = "processing"
    completed = "completed"


@dataclass(frozen=True)
class Batch:
    id: str
    merchant_id: str
    idempotency_key: str
    request_fingerprint: str
    all_or_nothing: bool
    status: BatchStatus
    item_count: int
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


@dataclass(frozen=True)
class BatchItem:
    id: int
    batch_id: str
    merchant_id: str
    seq: int  # position in the request, from 0
    reference: str
    channel: str
    amount: int
    currency: str
    body: str  # the item's transfer body, JSON
    state: ItemState
    transfer_id: str | None
    failure_code: str | None
    claimed_until: datetime | None


def item_status(state: ItemState, transfer_status: str | None) -> str:
    """What an item reports: its transfer's status once it has one, else its own state."""
    if transfer_status is not None and ItemState(state) is not ItemState.failed:
        return transfer_status
    return ItemState(state).value


def item_is_final(state: ItemState, transfer_status: str | None) -> bool:
    """Nothing more will happen to the item (a succeeded transfer counts as final)."""
    if ItemState(state) in (ItemState.failed, ItemState.canceled):
        return True
    if transfer_status is None or ItemState(state) is not ItemState.submitted:
        return False
    return is_final(TransferStatus(transfer_status))


def all_final(items: Iterable[tuple[ItemState, str | None]]) -> bool:
    return all(item_is_final(state, status) for state, status in items)


def duplicate_references(references: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    dupes: list[str] = []
    for ref in references:
        if ref in seen and ref not in dupes:
            dupes.append(ref)
        seen.add(ref)
    return dupes


def item_idempotency_key(reference: str) -> str:
    """The transfer idempotency key of an item (its own namespace within the merchant)."""
    return f"batch-ref:{reference}"
