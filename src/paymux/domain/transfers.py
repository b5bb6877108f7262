"""A transfer as the rest of Paymux sees it: one immutable value from creation to the API.

The store reads and writes it (``store/transfer_repo.py``), the services decide its moves,
the API and webhook events show it (``service/views.py``). A change is a new value made
with :func:`dataclasses.replace`, never a mutation, so a transfer handed to a view or an
event cannot change under it.

``next_action`` and ``metadata`` are kept as the JSON text the merchant's request and the
channel produced (stored as is); the views parse them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from paymux.domain.ledger import (
    EntryKind,
    JournalEntry,
    hold_entry,
    release_entry,
    reverse_entry,
    settle_entry,
)
from paymux.domain.states import TransferStatus


@dataclass(frozen=True, slots=True)
class Transfer:
    id: str
    merchant_id: str
    idempotency_key: str
    request_fingerprint: str
    status: TransferStatus
    amount: int  # minor units of ``currency``
    currency: str
    fee: int  # what the merchant pays Paymux, minor units
    channel_cost: int  # what the channel charges Paymux, minor units
    price_version: int | None
    cost_version: int | None
    payee_type: str
    payee_account: str  # sealed at rest; shown masked
    payee_name: str | None  # sealed at rest; shown masked
    payee_account_hmac: str | None  # blind index of payee_account
    channel: str
    channel_reference: str  # one per transfer, forever: the channel dedupes on it
    channel_order_id: str | None
    failure_code: str | None  # Paymux's own (domain.failures)
    failure_message: str | None
    channel_failure_code: str | None
    channel_failure_message: str | None
    next_action: str | None  # JSON: how the payee confirms (requires_confirmation)
    description: str | None
    metadata: str | None  # JSON object text, or None for {}
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    next_sync_at: datetime | None  # when the sync loop looks at it next (None: not queued)
    sync_attempts: int

    def hold(self) -> JournalEntry:
        """The entry written with the pending transfer: amount + fee held."""
        return hold_entry(self.merchant_id, self.amount, self.fee, self.currency)

    def entry_for(self, action: EntryKind) -> JournalEntry:
        """The journal entry a status move that makes ``action`` posts for this transfer."""
        m, amt, fee, cur = self.merchant_id, self.amount, self.fee, self.currency
        if action is EntryKind.settle:
            return settle_entry(m, self.channel, amt, fee, self.channel_cost, cur)
        if action is EntryKind.release:
            return release_entry(m, amt, fee, cur)
        if action is EntryKind.reverse:
            return reverse_entry(m, self.channel, amt, cur)
        raise ValueError(f"no transfer entry for {action}")


# Columns a status move may change (everything else is fixed at creation).
MUTABLE_FIELDS: tuple[str, ...] = (
    "status",
    "updated_at",
    "channel_order_id",
    "failure_code",
    "failure_message",
    "channel_failure_code",
    "channel_failure_message",
    "next_action",
    "completed_at",
    "next_sync_at",
    "sync_attempts",
)
