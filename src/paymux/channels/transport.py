"""One HTTP exchange with a channel, and what its failure says about delivery.

The only failures worth resending at once are those where the request certainly never
reached the channel (refused connection, DNS, connect or pool timeout). Anything later (a
read timeout, a disconnect, a reset) may have reached it: the outcome is unknown, the
transfer stays ``processing`` and the sync loop asks the channel (query), never a blind
resend here. Both supported transports (aiohttp and httpx's own; also httpx over aiohttp,
which statement downloads use) are judged the same way.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx

from paymux.channels.errors import RetryableBeforeAcceptance
from paymux.channels.http import Answer, ChannelHttp

log = logging.getLogger(__name__)


class Delivery(enum.StrEnum):
    NOT_SENT = "not_sent"  # the channel cannot have seen the request: safe to resend now
    UNKNOWN = "unknown"  # it may have: only a query can tell


# httpx's own transport raises these before a byte of the request is written.
_HTTPX_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# aiohttp raises these only while opening a connection (refused, DNS, TLS handshake, proxy,
# connect timeout or waiting for the pool): nothing was sent.
_AIOHTTP_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


def delivery_of(exc: BaseException) -> Delivery:
    """Whether the request that raised ``exc`` can have reached the channel."""
    # httpx-aiohttp maps every aiohttp connection error to httpx.ConnectTimeout, a refused
    # connection and a disconnect after sending alike: judge by the aiohttp error it wraps.
    aio = exc if isinstance(exc, aiohttp.ClientError) else exc.__cause__
    if isinstance(aio, aiohttp.ClientError):
        return Delivery.NOT_SENT if isinstance(aio, _AIOHTTP_NOT_SENT) else Delivery.UNKNOWN
    if isinstance(exc, _HTTPX_NOT_SENT):
        return Delivery.NOT_SENT
    return Delivery.UNKNOWN


@dataclass(frozen=True, slots=True)
class NoAnswer:
    """The request may have reached the channel but no answer was seen: outcome unknown."""

    reason: str


async def exchange(
    http: ChannelHttp, method: str, path: str, *, label: str, **kwargs: Any
) -> Answer | NoAnswer:
    """Send one request and read its answer.

    Raises RetryableBeforeAcceptance when the request was certainly not sent (the caller's
    retry policy resends it); returns NoAnswer for any other failure, whatever the
    transport raised.
    """
    try:
        return await http.request(method, path, **kwargs)
    except Exception as exc:  # anything not known to be "not sent" may have gone out
        name = type(exc).__name__
        if delivery_of(exc) is Delivery.NOT_SENT:
            raise RetryableBeforeAcceptance(f"not sent: {name}") from exc
        log.warning("%s: %s, outcome unknown", label, name)
        return NoAnswer(f"transport error: {name}")
