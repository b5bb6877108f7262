"""Times a channel call and records it (see :mod:`paymux.store.channel_calls`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

from paymux.channels.base import ChannelResult
from paymux.domain.ids import reference_to_id
from paymux.service.gateway import Gateway
from paymux.store.channel_calls import ChannelCall


async def recorded(
    gw: Gateway, kind: str, channel: str, reference: str, call: Awaitable[ChannelResult]
) -> ChannelResult:
    """Await ``call`` (a send, query or cancel for ``reference``) and record how it went;
    its result or exception passes through unchanged."""
    started = gw.clock()
    t0 = time.perf_counter()
    try:
        transfer_id = reference_to_id(reference)
    except ValueError:  # not one of our references: nothing to attach the record to
        return await call

    def log(outcome: str, result: ChannelResult | None = None, status: str | None = None) -> None:
        gw.call_log.record(
            gw.db,
            ChannelCall(
                transfer_id=transfer_id,
                channel=channel,
                kind=kind,
                started_at=started,
                latency_ms=round((time.perf_counter() - t0) * 1000),
                outcome=outcome,
                channel_status=result.raw_status if result else status,
                channel_code=result.failure_code if result else None,
                channel_message=result.failure_message if result else None,
                channel_order_id=result.channel_order_id if result else None,
            ),
        )

    try:
        result = await call
    except asyncio.CancelledError:  # the caller's time bound ran out
        log("timeout")
        raise
    except Exception as exc:
        log("error", status=type(exc).__name__)
        raise
    log(result.outcome.value, result)
    return result
