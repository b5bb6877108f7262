"""One delivery attempt of a merchant webhook: SSRF check, POST, bounded read, never raises.

DNS rebinding: the URL's host is resolved and every address checked right before the request,
and the request then connects to one of those checked addresses, never to a fresh lookup:
the URL is rewritten to the IP, with the original name in the Host header and, for https, as
the TLS SNI and certificate-verification name (the `sni_hostname` request extension, honoured
by both transports). So the address that was checked is the address used, for http and https.

Connection reuse is keyed by the IP: aiohttp includes the SNI name in its pool key, httpcore
does not, so with the httpx transport keep-alive is off - a TLS connection verified for one
merchant's name must never carry another merchant's request to the same IP.

Environment proxies are ignored (trust_env=False): a proxy would connect on our behalf to
addresses we never checked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import httpx

from paymux.webhooks.ssrf import CheckedURL, IPAddress, Resolver, UnsafeURL, resolve_checked

Transport = Literal["aiohttp", "httpx"]

EXCERPT_BYTES = 1024
MAX_ADDRESSES_TRIED = 3
_ERROR_MAX_CHARS = 300
USER_AGENT = "Paymux-Webhooks/1.0"


@dataclass(frozen=True)
class AttemptResult:
    ok: bool
    status_code: int | None
    latency_ms: int
    response_excerpt: str  # first 1 KiB of the response body, decoded with errors="replace"
    error: str | None


def _host_for_url(address: IPAddress) -> str:
    return f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)


def _host_header(checked: CheckedURL) -> str:
    host = f"[{checked.host}]" if ":" in checked.host else checked.host
    default_port = 443 if checked.scheme == "https" else 80
    return host if checked.port == default_port else f"{host}:{checked.port}"


def _pinned_url(checked: CheckedURL, address: IPAddress) -> str:
    parts = urlsplit(checked.url)
    netloc = f"{_host_for_url(address)}:{checked.port}"
    return urlunsplit((checked.scheme, netloc, parts.path or "/", parts.query, ""))


def _describe(exc: BaseException, url: str) -> str:
    if isinstance(exc, httpx.TransportError) and exc.__cause__ is not None:
        # httpx-aiohttp re-labels aiohttp errors loosely (a refused connection becomes
        # ConnectTimeout); the original exception names the real failure.
        exc = exc.__cause__
    text = str(exc).strip()
    query = urlsplit(url).query
    if query:
        # Merchants sometimes put tokens in the query string; keep them out of our records.
        text = text.replace(query, "[redacted]")
    described = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return described[:_ERROR_MAX_CHARS]


class WebhookSender:
    """Makes single delivery attempts; retries and scheduling belong to the caller."""

    def __init__(
        self,
        *,
        timeout_seconds: float = 10.0,
        max_response_bytes: int = 64 * 1024,
        allow_http: bool,
        allow_private: bool,
        transport: Transport = "aiohttp",
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 100,
    ) -> None:
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        if max_response_bytes < 0:
            raise ValueError("max_response_bytes must not be negative")
        self._timeout = timeout_seconds
        self._max_response_bytes = max_response_bytes
        self._allow_http = allow_http
        self._allow_private = allow_private
        self._resolver = resolver
        self._client = self._make_client(transport, ssl_context, max_connections)

    def _make_client(
        self, transport: Transport, ssl_context: ssl.SSLContext | None, max_connections: int
    ) -> httpx.AsyncClient:
        verify: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        timeout = httpx.Timeout(self._timeout)
        if transport == "aiohttp":
            from httpx_aiohttp import AiohttpTransport  # noqa: PLC0415 - optional fast path

            limits = httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                keepalive_expiry=30.0,
            )
            return httpx.AsyncClient(
                timeout=timeout,
                follow_redirects=False,
                trust_env=False,
                transport=AiohttpTransport(verify=verify, trust_env=False, limits=limits),
            )
        if transport == "httpx":
            limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=0)
            return httpx.AsyncClient(
                timeout=timeout,
                follow_redirects=False,
                trust_env=False,
                verify=verify,
                limits=limits,
            )
        raise ValueError(f"unknown transport {transport!r}")

    async def send(self, url: str, headers: Mapping[str, str], body: bytes) -> AttemptResult:
        """POST `body` to `url` once. 2xx is success; anything else, or any error, is not."""
        started = time.monotonic()

        def elapsed_ms() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            async with asyncio.timeout(self._timeout):
                checked = await resolve_checked(
                    url,
                    allow_http=self._allow_http,
                    allow_private=self._allow_private,
                    resolver=self._resolver,
                )
                return await self._post(checked, headers, body, elapsed_ms)
        except UnsafeURL as exc:
            return AttemptResult(False, None, elapsed_ms(), "", str(exc))
        except TimeoutError:
            error = f"TimeoutError: no complete response within {self._timeout:g}s"
            return AttemptResult(False, None, elapsed_ms(), "", error)
        except Exception as exc:  # an attempt reports failures, it never raises
            return AttemptResult(False, None, elapsed_ms(), "", _describe(exc, url))

    async def _post(
        self,
        checked: CheckedURL,
        headers: Mapping[str, str],
        body: bytes,
        elapsed_ms: Callable[[], int],
    ) -> AttemptResult:
        request_headers = {k: v for k, v in headers.items() if k.lower() != "host"}
        request_headers["host"] = _host_header(checked)
        # Identity keeps the capped read a cap on bytes received, not a decompression bomb.
        request_headers["accept-encoding"] = "identity"
        request_headers.setdefault("user-agent", USER_AGENT)
        extensions: dict[str, str] = {}
        if checked.scheme == "https" and not checked.host_is_ip:
            extensions["sni_hostname"] = checked.host

        last_error: Exception | None = None
        for address in checked.addresses[:MAX_ADDRESSES_TRIED]:
            request = self._client.build_request(
                "POST",
                _pinned_url(checked, address),
                headers=request_headers,
                content=body,
                extensions=extensions,
            )
            try:
                response = await self._client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                last_error = exc  # try the next checked address
                continue
            try:
                received = await self._read_capped(response)
            finally:
                await response.aclose()
            return self._result(response, received, elapsed_ms())
        assert last_error is not None  # addresses is never empty
        raise last_error

    async def _read_capped(self, response: httpx.Response) -> bytes:
        received = bytearray()
        if self._max_response_bytes == 0:
            return bytes(received)
        async for chunk in response.aiter_raw():
            received += chunk[: self._max_response_bytes - len(received)]
            if len(received) >= self._max_response_bytes:
                break  # the rest is never read; closing the response drops the connection
        return bytes(received)

    @staticmethod
    def _result(response: httpx.Response, received: bytes, latency_ms: int) -> AttemptResult:
        status = response.status_code
        excerpt = received[:EXCERPT_BYTES].decode("utf-8", errors="replace")
        if 200 <= status <= 299:
            return AttemptResult(True, status, latency_ms, excerpt, None)
        if 300 <= status <= 399:
            error = f"redirect {status} not followed; update the endpoint URL instead"
        else:
            error = f"endpoint answered HTTP {status}"
        return AttemptResult(False, status, latency_ms, excerpt, error)

    async def aclose(self) -> None:
        await self._client.aclose()
