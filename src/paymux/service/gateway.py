"""The gateway's wiring: one object holding the store, Redis, channels and caches."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from redis.asyncio import Redis

from paymux.channels.base import Channel
from paymux.domain.circuit import CircuitPolicy
from paymux.service.circuits import ChannelCircuits
from paymux.service.feebook import FeeBook
from paymux.service.outbox import Outbox
from paymux.settings import Settings
from paymux.store.channel_calls import ChannelCallLog
from paymux.store.db import Database
from paymux.store.idempotency import IdempotencyStore
from paymux.store.ledger_repo import LedgerRepo
from paymux.store.transfer_repo import TransferRepo


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Gateway:
    settings: Settings
    db: Database
    redis: Redis
    idempotency: IdempotencyStore
    channels: dict[str, Channel]
    feebook: FeeBook
    ledger: LedgerRepo = field(default_factory=LedgerRepo)
    outbox: Outbox = field(default_factory=Outbox)
    call_log: ChannelCallLog = field(default_factory=ChannelCallLog)
    clock: Callable[[], datetime] = utcnow
    circuits: ChannelCircuits = field(default_factory=lambda: ChannelCircuits(CircuitPolicy()))
    _transfers: TransferRepo | None = field(default=None, init=False, repr=False)

    @property
    def transfers(self) -> TransferRepo:
        """Every read and write of transfers (with their entries and events); it follows
        ``db`` when that is swapped (tests put a dead database in its place)."""
        if self._transfers is None or self._transfers.db is not self.db:
            self._transfers = TransferRepo(self.db)
        return self._transfers

    def channel_payee_types(self) -> dict[str, frozenset[str]]:
        return {
            name: frozenset(t.value for t in ch.payee_types) for name, ch in self.channels.items()
        }

    def notify_url(self, channel: str) -> str:
        return f"{self.settings.notify_base_url}/callbacks/{channel}"
