"""Every installed channel adapter, over every supported transport, against real sockets:
a request that never left (refused connection) is resent under the same reference; one that
may have arrived (read timeout, disconnect after sending) is not, and reads as PROCESSING,
which leaves the transfer to the sync loop's query."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import respx
from aiohttp.client_reqrep import ConnectionKey
from httpx_aiohttp.transport import map_aiohttp_exceptions

from paymux.channels.base import Channel, TransferOrder
from paymux.channels.registry import available_factories
from paymux.channels.transport import Delivery, delivery_of
from paymux.devstack import sandbox_settings
from paymux.domain.outcomes import Outcome
from paymux.domain.payees import PayeeType

CHANNELS = sorted(available_factories())
TRANSPORTS = ["aiohttp", "httpx"]
PAYEES = {
    "alipay": (PayeeType.ALIPAY_ACCOUNT, "2088123412341234"),
    "wechat": (PayeeType.WECHAT_OPENID, "o-transport-test"),
}
FAST = {
    "timeout_seconds": 0.4,
    "connect_timeout_seconds": 0.5,
    "retry_attempts": 3,
    "retry_initial_seconds": 0.01,
    "retry_max_seconds": 0.02,
}


def order_for(name: str) -> TransferOrder:
    payee_type, account = PAYEES[name]
    return TransferOrder(
        reference="XPORT0001",
        amount=1500,
        currency="CNY",
        payee_type=payee_type,
        payee_account=account,
        description="transport",
    )


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("transport-keys")


Build = Callable[[str, str, str], tuple[Channel, list[str]]]


@pytest.fixture
async def build(keys_dir: Path) -> AsyncIterator[Build]:
    """Builds a channel through its factory; also returns the requests it attempted."""
    built: list[Channel] = []

    def make(name: str, transport: str, url: str) -> tuple[Channel, list[str]]:
        settings = {**sandbox_settings(name, keys_dir / name, url), **FAST}
        channel = available_factories()[name]({**settings, "transport": transport})
        built.append(channel)
        attempts: list[str] = []

        async def seen(method: str, url: str) -> None:
            attempts.append(f"{method} {url}")

        hooks: list[Any] = getattr(channel, "attempt_hooks")
        hooks.append(seen)
        return channel, attempts

    yield make
    for channel in built:
        await channel.aclose()


def closed_port() -> int:
    with socket.socket() as probe:  # bound, never listening, closed: connections refused
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def serve(handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]) -> Any:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def _read_request_then_hang(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
    await reader.read(65536)  # the request arrived...
    await asyncio.sleep(5)  # ...and no answer comes


async def _read_request_then_close(reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    await reader.read(65536)
    w.close()  # the request arrived; the connection drops without an answer


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("name", CHANNELS)
async def test_refused_connection_is_not_sent_and_resent(
    build: Build, name: str, transport: str
) -> None:
    channel, attempts = build(name, transport, f"http://127.0.0.1:{closed_port()}")
    result = await channel.send(order_for(name))
    assert result.outcome is Outcome.PROCESSING
    assert len(attempts) == FAST["retry_attempts"]
    assert result.failure_message is not None and "retries exhausted" in result.failure_message


@pytest.mark.parametrize(
    "handler", [_read_request_then_hang, _read_request_then_close], ids=["read-timeout", "drop"]
)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("name", CHANNELS)
async def test_request_that_may_have_arrived_is_unknown_and_not_resent(
    build: Build, name: str, transport: str, handler: Any
) -> None:
    server, url = await serve(handler)
    try:
        channel, attempts = build(name, transport, url)
        result = await channel.send(order_for(name))
    finally:
        server.close()
    assert result.outcome is Outcome.PROCESSING
    assert len(attempts) == 1
    assert result.failure_message is not None
    assert "retries exhausted" not in result.failure_message


@pytest.mark.parametrize(
    ("error", "attempts"),
    [
        (httpx.ConnectTimeout("connect timeout"), FAST["retry_attempts"]),
        (httpx.PoolTimeout("no free connection"), FAST["retry_attempts"]),
        (httpx.WriteTimeout("stalled while sending"), 1),
        (httpx.RemoteProtocolError("disconnected without a response"), 1),
    ],
    ids=repr,
)
@pytest.mark.parametrize("name", CHANNELS)
async def test_httpx_edge_failures(
    build: Build, name: str, error: Exception, attempts: int
) -> None:
    channel, _ = build(name, "httpx", "http://channel.test")
    with respx.mock(base_url="http://channel.test") as mock:
        route = mock.route().mock(side_effect=error)
        result = await channel.send(order_for(name))
    assert result.outcome is Outcome.PROCESSING
    assert route.call_count == attempts


# --- the classification itself, for errors real sockets cannot produce on demand ---------


def _connector_error(kind: type[aiohttp.ClientConnectorError], os_error: OSError) -> Exception:
    fields = dict.fromkeys(ConnectionKey._fields) | {"host": "channel.test", "port": 443}
    return kind(ConnectionKey(**fields), os_error)


def _via_httpx_aiohttp(exc: Exception) -> BaseException:
    """What the aiohttp transport raises for ``exc``: httpx-aiohttp's own mapping."""
    try:
        with map_aiohttp_exceptions():
            raise exc
    except httpx.TransportError as mapped:
        assert mapped.__cause__ is exc
        return mapped
    raise AssertionError("not mapped")


NOT_SENT_AIOHTTP = [
    _connector_error(aiohttp.ClientConnectorError, ConnectionRefusedError(111, "refused")),
    _connector_error(aiohttp.ClientConnectorDNSError, socket.gaierror(-2, "unknown name")),
    aiohttp.ConnectionTimeoutError("connect timeout"),  # connect, or waiting for the pool
]
UNKNOWN_AIOHTTP = [
    aiohttp.SocketTimeoutError("read timeout"),
    aiohttp.ServerDisconnectedError(),  # mapped to httpx.ConnectTimeout, yet sent
    aiohttp.ClientOSError(104, "connection reset by peer"),
    aiohttp.ClientPayloadError("truncated body"),
]
NOT_SENT_HTTPX = [httpx.ConnectError("x"), httpx.ConnectTimeout("x"), httpx.PoolTimeout("x")]
UNKNOWN_HTTPX = [
    httpx.ReadTimeout("x"),
    httpx.WriteTimeout("x"),
    httpx.ReadError("x"),
    httpx.WriteError("x"),
    httpx.RemoteProtocolError("x"),
    RuntimeError("a transport bug"),
]


@pytest.mark.parametrize("exc", NOT_SENT_AIOHTTP, ids=repr)
def test_aiohttp_connection_failures_are_not_sent(exc: Exception) -> None:
    assert delivery_of(_via_httpx_aiohttp(exc)) is Delivery.NOT_SENT
    assert delivery_of(exc) is Delivery.NOT_SENT


@pytest.mark.parametrize("exc", UNKNOWN_AIOHTTP, ids=repr)
def test_aiohttp_failures_after_connecting_are_unknown(exc: Exception) -> None:
    assert delivery_of(_via_httpx_aiohttp(exc)) is Delivery.UNKNOWN
    assert delivery_of(exc) is Delivery.UNKNOWN


@pytest.mark.parametrize("exc", NOT_SENT_HTTPX, ids=repr)
def test_httpx_connection_failures_are_not_sent(exc: Exception) -> None:
    assert delivery_of(exc) is Delivery.NOT_SENT


@pytest.mark.parametrize("exc", UNKNOWN_HTTPX, ids=repr)
def test_httpx_failures_after_connecting_are_unknown(exc: Exception) -> None:
    assert delivery_of(exc) is Delivery.UNKNOWN
