"""The contract every channel adapter implements.

The vocabulary it maps into (:class:`~paymux.domain.outcomes.Outcome`,
:class:`~paymux.domain.payees.PayeeType`, :class:`~paymux.domain.statement_lines.StatementLine`)
belongs to the domain.

Adapters live under ``adapters/<name>/`` and register a factory in the ``paymux.channels``
entry-point group. The factory receives the channel's settings mapping (from
``config/channels.toml`` / environment) and returns an object satisfying :class:`Channel`.
Nothing in ``paymux`` imports an adapter directly.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from paymux.domain.outcomes import Outcome
from paymux.domain.payees import PayeeType
from paymux.domain.statement_lines import StatementLine


@dataclass(frozen=True, slots=True)
class TransferOrder:
    """What an adapter needs to send (or query) one transfer. Amounts are integer fen."""

    reference: str  # our channel reference: out_biz_no / out_bill_no, alphanumeric, <= 32 chars
    amount: int  # minor units (fen)
    currency: str  # ISO 4217, "CNY"
    payee_type: PayeeType
    payee_account: str
    payee_name: str | None = None
    description: str | None = None
    notify_url: str | None = None


@dataclass(frozen=True, slots=True)
class ChannelResult:
    """A channel's answer to a send or a query, mapped into the outcome taxonomy."""

    outcome: Outcome
    channel_order_id: str | None = None  # the channel's own id (order_id / transfer_bill_no)
    failure_code: str | None = None  # channel's code, e.g. PAYEE_NOT_EXIST
    failure_message: str | None = None
    raw_status: str | None = None  # the channel's own status word, for audit
    raw: Mapping[str, Any] = field(default_factory=dict)  # parsed response node, for audit
    # With REQUIRES_CONFIRMATION: what the merchant's front end needs to let the payee
    # confirm, e.g. {"type": "wechat_user_confirmation", "wechat": {...}, "expires_at": ...}.
    next_action: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """A verified (and, for WeChat, decrypted) asynchronous notification from a channel."""

    reference: str  # our channel reference
    outcome: Outcome
    channel_order_id: str | None
    amount: int | None  # fen, as the channel states it (for cross-checking)
    currency: str | None
    channel_account: str | None  # app_id / mchid the notification is addressed to
    failure_code: str | None = None
    failure_message: str | None = None
    raw_status: str | None = None
    notification_id: str | None = None  # channel's notify id, for audit and dedupe
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Ack:
    """The acknowledgement a channel expects from a notification receiver."""

    status_code: int
    body: bytes
    content_type: str


class ChannelError(Exception):
    """Base for adapter errors that escape to Paymux."""


class InvalidSignature(ChannelError):
    """A response or notification whose signature (or decryption) did not verify."""


class MalformedNotification(ChannelError):
    """A notification that verified but cannot be understood."""


@runtime_checkable
class Channel(Protocol):
    """One payout channel. Implementations must be safe to share across tasks."""

    name: str  # entry-point name: "alipay", "wechat"
    account_id: str  # our account at the channel (Alipay app_id, WeChat mchid)
    payee_types: frozenset[PayeeType]  # payee types this channel can pay

    async def send(self, order: TransferOrder) -> ChannelResult:
        """Send a transfer once (retrying only before acceptance, same reference).

        Never raises for channel-side problems: a definitive refusal is FAILED, anything
        whose outcome was not seen (timeout after send, 5xx, system busy, a response whose
        signature does not verify) is PROCESSING.
        """
        ...

    async def query(self, order: TransferOrder) -> ChannelResult:
        """Ask the channel for the state of ``order.reference``.

        Returns NOT_FOUND when the channel has no such order, PROCESSING when unknown.
        """
        ...

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notification:
        """Verify (and decrypt) a notification. Raises InvalidSignature or
        MalformedNotification; never returns an unverified notification."""
        ...

    def notification_ack(self, ok: bool) -> Ack:
        """The answer the channel expects: ``ok`` stops its resending."""
        ...

    async def aclose(self) -> None:
        """Release connection pools."""
        ...


@runtime_checkable
class Cancellable(Protocol):
    """Optional capability: cancel an order the payee has not confirmed yet.

    A channel without it still plugs in; Paymux then refuses to cancel its transfers once
    they were sent. ``failure_codes`` (channel code -> Paymux failure code) is optional data
    every adapter may expose as well; see :mod:`paymux.domain.failures`.
    """

    async def cancel(self, order: TransferOrder) -> ChannelResult:
        """Ask the channel to cancel ``order.reference``.

        CANCELED when the channel accepted the cancellation. Anything else means "not
        cancelled" (refused, e.g. the payee already confirmed, or no answer seen): the
        caller then asks :meth:`Channel.query` for the order's state. Never raises for
        channel-side problems.
        """
        ...


# --- statements (对账单): an OPTIONAL capability -------------------------------------------


class StatementUnavailable(ChannelError):
    """The statement could not be fetched (channel unreachable, refused, not generated)."""


class StatementCorrupt(ChannelError):
    """The statement was fetched but does not verify (signature, hash, format, totals)."""


@runtime_checkable
class StatementSource(Protocol):
    """A channel that can hand over its daily account-flow statement.

    Optional: a channel without it still plugs in; reconciliation then refuses that channel
    with a clear message.
    """

    async def download_statement(self, bill_date: str, dest_dir: Path) -> Path:
        """Fetch and verify the statement of ``bill_date`` (yyyy-MM-dd) into ``dest_dir``.

        Returns the path of the file exactly as the channel served it (decompressed where
        the channel's hash covers the decompressed bytes). Raises StatementUnavailable or
        StatementCorrupt; leaves no file behind on failure.
        """
        ...

    def iter_statement(self, path: Path) -> Iterator[StatementLine]:
        """Stream the detail lines of a downloaded statement (bounded memory).

        Checks the summary block at the end and raises StatementCorrupt if the file is
        malformed or its totals disagree with its lines.
        """
        ...


def statement_source(channel: object) -> StatementSource | None:
    """The channel's statement capability, or None when it has none."""
    return channel if isinstance(channel, StatementSource) else None
