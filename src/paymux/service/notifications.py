"""Channel notifications in: verify first, cross-check against our record, then apply.

The outcome goes through the same :func:`apply_result` as the sync loop, so duplicates and
late or out-of-order notifications are no-ops and terminal states stay terminal. Every
notification, good or bad, is stored for audit (the body, never our keys).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from paymux import metrics, request_context
from paymux.channels.base import (
    Ack,
    ChannelResult,
    InvalidSignature,
    MalformedNotification,
    Notification,
)
from paymux.domain.transfers import Transfer
from paymux.service.gateway import Gateway
from paymux.service.transfers import apply_result
from paymux.store.notifications_repo import record_notification

log = logging.getLogger(__name__)

_MAX_STORED_BODY = 16_384
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(raw: bytes | str) -> str:
    """Text any database column can hold: invalid UTF-8 and NUL (which PostgreSQL refuses in
    text) become visible backslash escapes, so a hostile body is still kept for audit."""
    text = raw.decode("utf-8", errors="backslashreplace") if isinstance(raw, bytes) else raw
    return _UNSTORABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


async def _record(
    gw: Gateway,
    channel: str,
    body: bytes,
    *,
    verified: bool,
    result: str,
    reference: str | None = None,
    detail: str | None = None,
) -> None:
    metrics.channel_notifications.labels(channel, result).inc()
    await record_notification(
        gw.db,
        channel=channel,
        verified=verified,
        result=result,
        reference=storable_text(reference)[:64] if reference is not None else None,
        detail=storable_text(detail or "")[:256] or None,
        body=storable_text(body[:_MAX_STORED_BODY]),
        received_at=gw.clock(),
    )


def _mismatch(t: Transfer, note: Notification, account_id: str) -> str | None:
    if note.amount is not None and note.amount != t.amount:
        return f"amount {note.amount} != {t.amount}"
    if note.currency is not None and note.currency != t.currency:
        return f"currency {note.currency} != {t.currency}"
    if note.channel_account is not None and note.channel_account != account_id:
        return f"channel account {note.channel_account} is not ours"
    order_id = t.channel_order_id
    if note.channel_order_id and order_id and note.channel_order_id != order_id:
        return f"channel order {note.channel_order_id} != {order_id}"
    return None


async def handle_notification(
    gw: Gateway, channel_name: str, headers: Mapping[str, str], body: bytes
) -> Ack | None:
    """The acknowledgement to answer, or None when no such channel is configured."""
    channel = gw.channels.get(channel_name)
    if channel is None:
        return None
    try:
        note = channel.parse_notification(headers, body)
    except (InvalidSignature, MalformedNotification) as exc:
        kind = "bad_signature" if isinstance(exc, InvalidSignature) else "malformed"
        log.warning("refused %s notification: %s", channel_name, kind)
        await _record(gw, channel_name, body, verified=False, result=kind)
        return channel.notification_ack(False)

    found = await gw.transfers.by_reference(note.reference)
    if found is None or found.channel != channel_name:
        metrics.operator_alerts.labels("notification_unknown_reference").inc()
        log.error("ALERT %s notification for unknown reference %s", channel_name, note.reference)
        await _record(
            gw,
            channel_name,
            body,
            verified=True,
            result="unknown_reference",
            reference=note.reference,
        )
        return channel.notification_ack(False)
    request_context.transfer_id.set(found.id)  # this request is about that transfer
    problem = _mismatch(found, note, channel.account_id)
    if problem is not None:
        metrics.operator_alerts.labels("notification_mismatch").inc()
        log.error(
            "ALERT %s notification for %s does not match our record: %s",
            channel_name,
            note.reference,
            problem,
        )
        await _record(
            gw,
            channel_name,
            body,
            verified=True,
            result="mismatch",
            reference=note.reference,
            detail=problem,
        )
        return channel.notification_ack(False)

    before = found.status
    after = await apply_result(
        gw,
        found.id,
        ChannelResult(
            outcome=note.outcome,
            channel_order_id=note.channel_order_id,
            failure_code=note.failure_code,
            failure_message=note.failure_message,
            raw_status=note.raw_status,
        ),
        source=f"{channel_name} notification",
    )
    result = "applied" if after.status is not before else "no_change"
    await _record(
        gw,
        channel_name,
        body,
        verified=True,
        result=result,
        reference=note.reference,
        detail=f"{before.value} -> {after.status.value}",
    )
    return channel.notification_ack(True)
