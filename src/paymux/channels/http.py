"""Outbound HTTP clients for channel adapters, with the transport as a choice.

httpx's own transport was measured at ~140 req/s on this path on 2 cores; httpx over an
aiohttp transport at ~710/s (see docs/PERFORMANCE.md), so aiohttp is the default.
"""

from __future__ import annotations

from typing import Literal

import httpx

from paymux import tracing

Transport = Literal["aiohttp", "httpx"]


def make_http_client(
    *,
    base_url: str,
    timeout: httpx.Timeout | float,
    transport: Transport = "aiohttp",
    max_connections: int = 200,
) -> httpx.AsyncClient:
    """An AsyncClient that never follows redirects (a redirect from a channel is an error)."""
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=30.0,
    )
    if transport == "aiohttp":
        from httpx_aiohttp import AiohttpTransport  # noqa: PLC0415 - optional fast path

        return httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            follow_redirects=False,
            transport=AiohttpTransport(limits=limits),
            event_hooks=tracing.request_hooks(),
        )
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=timeout,
        follow_redirects=False,
        limits=limits,
        event_hooks=tracing.request_hooks(),
    )
