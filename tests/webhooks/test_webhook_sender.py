"""One webhook delivery attempt against a real local aiohttp server (both transports)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from standardwebhooks.webhooks import Webhook

from paymux.webhooks import signing
from paymux.webhooks.sender import AttemptResult, Transport, WebhookSender

TRANSPORTS: list[Transport] = ["aiohttp", "httpx"]
SECRET = signing.generate_secret()
TLS_NAME = "hooks.merchant.test"


@dataclass
class Seen:
    method: str
    path: str
    host: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    port: int
    tls_port: int
    client_ssl: ssl.SSLContext
    seen: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tls_contexts(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A throwaway CA and a leaf for TLS_NAME: (server context, client context trusting the CA)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "paymux test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TLS_NAME)]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(TLS_NAME)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = tmp / "leaf.pem", tmp / "leaf.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert_file, key_file)
    client_ctx = ssl.create_default_context(
        cadata=ca.public_bytes(serialization.Encoding.PEM).decode()
    )
    return server_ctx, client_ctx


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    server_ssl, client_ssl = _tls_contexts(tmp_path_factory.mktemp("tls"))
    state = Server(port=0, tls_port=0, client_ssl=client_ssl)

    async def record(request: web.Request) -> None:
        state.seen.append(
            Seen(
                request.method,
                request.path,
                request.host,
                dict(request.headers),
                await request.read(),
            )
        )

    async def ok(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=200, text="thanks")

    async def verify(request: web.Request) -> web.Response:
        await record(request)
        body = await request.read()
        Webhook(SECRET).verify(body, dict(request.headers), json_parse=False)
        return web.Response(status=204)

    async def fail(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=500, text="boom: database unavailable")

    async def redirect(request: web.Request) -> web.Response:
        await record(request)
        raise web.HTTPFound("/ok")

    async def slow(request: web.Request) -> web.Response:
        await record(request)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.release.wait(), timeout=5)
        return web.Response(text="late")

    async def huge(request: web.Request) -> web.StreamResponse:
        await record(request)
        response = web.StreamResponse(status=200)
        await response.prepare(request)
        chunk = b"a" * 65536
        deadline = time.monotonic() + 10
        try:
            # Endless unless the client stops reading: an uncapped reader would hang here.
            while time.monotonic() < deadline and not state.release.is_set():
                await response.write(chunk)
        except (ConnectionResetError, ConnectionError):
            pass
        return response

    app = web.Application()
    app.router.add_post("/ok", ok)
    app.router.add_post("/verify", verify)
    app.router.add_post("/fail", fail)
    app.router.add_post("/redirect", redirect)
    app.router.add_post("/slow", slow)
    app.router.add_post("/huge", huge)
    runner = web.AppRunner(app, shutdown_timeout=1.0, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    tls_site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl)
    await site.start()
    await tls_site.start()
    state.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.tls_port = tls_site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield state
    finally:
        state.release.set()
        await runner.cleanup()


SenderFactory = Callable[..., WebhookSender]


@pytest_asyncio.fixture(loop_scope="session")
async def make_sender() -> AsyncIterator[SenderFactory]:
    made: list[WebhookSender] = []

    def factory(**kwargs: object) -> WebhookSender:
        options: dict[str, object] = {"allow_http": True, "allow_private": True}
        options.update(kwargs)
        sender = WebhookSender(**options)  # type: ignore[arg-type]
        made.append(sender)
        return sender

    yield factory
    for sender in made:
        await sender.aclose()


def counting_resolver(
    table: dict[str, list[str]],
) -> tuple[Callable[[str, int], Awaitable[Sequence[str]]], list[str]]:
    calls: list[str] = []

    async def resolve(host: str, port: int) -> Sequence[str]:
        calls.append(host)
        if host not in table:
            raise OSError("unknown host")
        return table[host]

    return resolve, calls


def _body() -> bytes:
    return b'{"type":"transfer.succeeded","data":{"amount":1234,"currency":"CNY"}}'


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_2xx_is_ok_and_library_verifies_what_was_sent(
    server: Server, make_sender: SenderFactory, transport: Transport
) -> None:
    sender = make_sender(transport=transport)
    body = _body()
    sent_headers = signing.headers([SECRET], f"msg_{transport}", int(time.time()), body)
    result = await sender.send(f"http://127.0.0.1:{server.port}/verify", sent_headers, body)
    assert result == AttemptResult(True, 204, result.latency_ms, "", None)
    seen = server.seen[-1]
    assert seen.method == "POST" and seen.body == body
    assert seen.headers["webhook-id"] == f"msg_{transport}"
    assert seen.headers["Content-Type"] == "application/json"

    result = await sender.send(f"http://127.0.0.1:{server.port}/ok", sent_headers, body)
    assert result.ok and result.status_code == 200
    assert result.response_excerpt == "thanks"
    assert result.error is None
    assert 0 <= result.latency_ms < 5000


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_500_is_not_ok_with_excerpt(
    server: Server, make_sender: SenderFactory, transport: Transport
) -> None:
    result = await make_sender(transport=transport).send(
        f"http://127.0.0.1:{server.port}/fail", {}, _body()
    )
    assert not result.ok
    assert result.status_code == 500
    assert result.response_excerpt == "boom: database unavailable"
    assert result.error is not None and "500" in result.error


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_redirect_is_a_failure_and_not_followed(
    server: Server, make_sender: SenderFactory, transport: Transport
) -> None:
    before = server.paths().count("/ok")
    result = await make_sender(transport=transport).send(
        f"http://127.0.0.1:{server.port}/redirect", {}, _body()
    )
    assert not result.ok
    assert result.status_code == 302
    assert result.error is not None and "redirect" in result.error
    await asyncio.sleep(0.05)
    assert server.paths().count("/ok") == before


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_slow_server_times_out_within_bound(
    server: Server, make_sender: SenderFactory, transport: Transport
) -> None:
    sender = make_sender(transport=transport, timeout_seconds=0.5)
    started = time.monotonic()
    result = await sender.send(f"http://127.0.0.1:{server.port}/slow", {}, _body())
    elapsed = time.monotonic() - started
    assert not result.ok
    assert result.status_code is None
    assert result.error is not None and "Timeout" in result.error
    assert 0.4 <= elapsed < 1.5
    assert 400 <= result.latency_ms < 1500


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_huge_body_is_capped(
    server: Server, make_sender: SenderFactory, transport: Transport
) -> None:
    sender = make_sender(transport=transport, timeout_seconds=3.0, max_response_bytes=100_000)
    started = time.monotonic()
    result = await sender.send(f"http://127.0.0.1:{server.port}/huge", {}, _body())
    assert result.ok, result.error
    assert result.status_code == 200
    assert result.response_excerpt == "a" * 1024
    assert time.monotonic() - started < 2.0  # it stopped reading instead of waiting it out


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_refused_connection_is_reported_not_raised(
    make_sender: SenderFactory, transport: Transport
) -> None:
    port = _free_port()  # nothing listens there any more
    result = await make_sender(transport=transport, timeout_seconds=3.0).send(
        f"http://127.0.0.1:{port}/hook?token=s3cr3t", {}, _body()
    )
    assert not result.ok
    assert result.status_code is None
    assert result.error is not None and "Connect" in result.error
    assert "s3cr3t" not in result.error


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_unsafe_url_is_refused_before_any_request(
    server: Server, make_sender: SenderFactory, transport: Transport
) -> None:
    count = len(server.seen)
    sender = make_sender(transport=transport, allow_private=False)
    result = await sender.send(f"http://127.0.0.1:{server.port}/ok", {}, _body())
    assert not result.ok and result.status_code is None
    assert result.error is not None and "loopback" in result.error
    sender = make_sender(transport=transport, allow_http=False)
    result = await sender.send(f"http://127.0.0.1:{server.port}/ok", {}, _body())
    assert result.error is not None and "https" in result.error
    assert len(server.seen) == count


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_http_connects_to_the_checked_address_with_the_name_as_host(
    server: Server, make_sender: SenderFactory, transport: Transport
) -> None:
    # ".test" names never resolve in real DNS: a second lookup by the HTTP stack would fail.
    resolver, calls = counting_resolver({"merchant.test": ["127.0.0.1"]})
    sender = make_sender(transport=transport, resolver=resolver)
    result = await sender.send(f"http://merchant.test:{server.port}/ok", {}, _body())
    assert result.ok, result.error
    assert calls == ["merchant.test"]
    assert server.seen[-1].host == f"merchant.test:{server.port}"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_rebinding_to_private_is_caught_at_send_time(
    server: Server, make_sender: SenderFactory, transport: Transport
) -> None:
    # The name was public when the endpoint was registered; now it points inside.
    resolver, calls = counting_resolver({"rebind.test": ["127.0.0.1"]})
    count = len(server.seen)
    sender = make_sender(transport=transport, resolver=resolver, allow_private=False)
    result = await sender.send(f"http://rebind.test:{server.port}/ok", {}, _body())
    assert not result.ok
    assert result.error is not None and "loopback" in result.error
    assert calls == ["rebind.test"]
    assert len(server.seen) == count


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_https_pins_the_address_and_verifies_the_name(
    server: Server, make_sender: SenderFactory, transport: Transport
) -> None:
    resolver, calls = counting_resolver(
        {TLS_NAME: ["127.0.0.1"], "other.merchant.test": ["127.0.0.1"]}
    )
    sender = make_sender(
        transport=transport, resolver=resolver, allow_http=False, ssl_context=server.client_ssl
    )
    result = await sender.send(f"https://{TLS_NAME}:{server.tls_port}/ok", {}, _body())
    assert result.ok, result.error
    assert server.seen[-1].host == f"{TLS_NAME}:{server.tls_port}"
    assert calls == [TLS_NAME]
    # Same IP, but the certificate is not valid for this name: must fail, not be reused.
    count = len(server.seen)
    result = await sender.send(f"https://other.merchant.test:{server.tls_port}/ok", {}, _body())
    assert not result.ok
    assert result.error is not None
    assert "certificate" in result.error.lower() or "ssl" in result.error.lower()
    assert len(server.seen) == count


async def test_send_never_raises_on_garbage_input(make_sender: SenderFactory) -> None:
    sender = make_sender()
    result = await sender.send("not a url at all", {}, b"")
    assert not result.ok and result.error
