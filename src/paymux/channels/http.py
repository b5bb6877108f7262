"""Outbound HTTP for channel adapters, with the transport as a choice.

``aiohttp`` (the default) sends the adapters' calls on aiohttp itself; ``httpx`` sends them
on httpx's own transport (what respx-based tests mock). Both give the adapter the same
:class:`Answer`, and their failures are judged the same way (channels/transport.py).

History, measured on 2 cores: httpx's own transport carried ~140 req/s on this path, httpx
over an aiohttp transport ~710/s; aiohttp alone then cost ~0.45 ms of CPU per call where
httpx over aiohttp cost ~1.1-1.3 ms (client and a local server together), about 7 % of the
gateway's CPU per transfer, so the hot call no longer goes through httpx at all.

Statement downloads stream through :attr:`ChannelHttp.httpx_client` (on the same aiohttp
session and connection pool when the transport is aiohttp).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import httpx

from paymux import tracing

Transport = Literal["aiohttp", "httpx"]
KEEPALIVE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Answer:
    """A channel's HTTP answer, whichever transport carried it."""

    status_code: int
    headers: Mapping[str, str]  # case-insensitive
    content: bytes


# Called with (method, url) before each attempt goes out: an extension point for tests
# that count resends, on either transport.
AttemptHook = Callable[[str, str], Awaitable[None]]


class ChannelHttp:
    """One channel's HTTP client: never follows redirects (a redirect from a channel is an
    error); bounded connect, pool wait and read."""

    def __init__(
        self,
        *,
        base_url: str,
        timeout_seconds: float,
        connect_timeout_seconds: float,
        transport: Transport = "aiohttp",
        max_connections: int = 200,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.transport = transport
        self.attempt_hooks: list[AttemptHook] = []
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        # The same bounds as httpx.Timeout(timeout, connect=connect): pool wait and read
        # take ``timeout``, opening a connection ``connect``.
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeout_seconds,
            sock_connect=connect_timeout_seconds,
            sock_read=timeout_seconds,
        )
        limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=KEEPALIVE_SECONDS,
        )
        if transport == "aiohttp":
            from httpx_aiohttp import AiohttpTransport  # noqa: PLC0415 - optional fast path

            httpx_transport: httpx.AsyncBaseTransport = AiohttpTransport(
                limits=limits, client=self.session
            )
        else:
            httpx_transport = httpx.AsyncHTTPTransport(limits=limits)
        self.httpx_client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout_seconds, connect=connect_timeout_seconds),
            follow_redirects=False,
            transport=httpx_transport,
            event_hooks=tracing.request_hooks(),
        )

    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session, opened on first use (it belongs to the running loop)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections, keepalive_timeout=KEEPALIVE_SECONDS
                ),
                timeout=self._timeout,
            )
        return self._session

    async def request(self, method: str, path: str, **kwargs: Any) -> Answer:
        """Send one request (``data`` a form, or ``content`` bytes; ``headers``) and read
        the whole answer. Raises the transport's own errors."""
        url = self.base_url + path
        for hook in self.attempt_hooks:
            await hook(method, url)
        if self.transport == "httpx":
            got = await self.httpx_client.request(method, url, **kwargs)
            return Answer(got.status_code, got.headers, got.content)
        headers = dict(kwargs.get("headers") or {})
        headers.update(tracing.outgoing_headers())
        content = kwargs.get("content")
        async with self.session().request(
            method,
            url,
            data=kwargs.get("data") if content is None else content,
            headers=headers,
            allow_redirects=False,
        ) as response:
            return Answer(response.status, response.headers, await response.read())

    async def aclose(self) -> None:
        await self.httpx_client.aclose()
        if self._session is not None:
            await self._session.close()
