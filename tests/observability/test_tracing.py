"""OpenTelemetry (the otel extra, installed in dev): one trace spans API request →
transfer.create → channel.send, and the channel's HTTP request carries its traceparent.
The gateway runs in-process (to read the in-memory exporter) against a real sandbox."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic import SecretStr

from paymux import tracing
from paymux.api.app import create_app
from paymux.devstack import Stack
from paymux.settings import Settings
from tests.e2e.conftest import make_stack
from tests.support import fresh_database_url


@pytest.fixture(scope="module")
def sandboxes(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Stack]:
    s = make_stack(tmp_path_factory.mktemp("otel"), redis_url)
    try:
        s.start_sandboxes()
        yield s
    finally:
        s.stop_all()


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracing.use_provider(provider)
    try:
        yield memory
    finally:
        tracing.disable()


async def test_trace_spans_api_service_and_channel_with_traceparent(
    sandboxes: Stack, redis_url: str, tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    channels = {
        name: {**cfg, "transport": "httpx"} for name, cfg in sandboxes.channel_settings().items()
    }
    settings = Settings(
        data_dir=tmp_path,
        database_url=fresh_database_url(tmp_path),
        redis_url=redis_url,
        admin_key=SecretStr("ak_otel_" + uuid.uuid4().hex),
        channels=channels,
        channels_file=tmp_path / "none.toml",
        sync_enabled=False,
        webhook_workers_enabled=False,
    )
    app = create_app(settings)
    admin = {"Authorization": f"Bearer {settings.admin_key.get_secret_value()}"}  # type: ignore[union-attr]
    incoming_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    with respx.mock(assert_all_called=False) as mock:
        to_sandbox = mock.route(port=int(sandboxes.sandbox_url("alipay").rsplit(":", 1)[1]))
        to_sandbox.pass_through()
        mock.route().pass_through()
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://gw", timeout=30
            ) as gw,
        ):
            merchant = (await gw.post("/v1/merchants", json={"name": "M"}, headers=admin)).json()
            topup = await gw.post(
                f"/v1/merchants/{merchant['id']}/topups",
                json={"amount": 100_000, "currency": "CNY"},
                headers={**admin, "Idempotency-Key": uuid.uuid4().hex},
            )
            assert topup.status_code == 201, topup.text
            exporter.clear()
            resp = await gw.post(
                "/v1/transfers",
                json={
                    "amount": 1234,
                    "currency": "CNY",
                    "payee": {"type": "alipay_account", "account": "otel@example.com"},
                },
                headers={
                    "Authorization": f"Bearer {merchant['secret_key']}",
                    "Idempotency-Key": uuid.uuid4().hex,
                    "traceparent": f"00-{incoming_trace}-00f067aa0ba902b7-01",
                },
            )
    assert resp.status_code == 201, resp.text
    assert resp.json()["status"] == "succeeded"

    finished = exporter.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}
    create = next(s for s in finished if s.name == "transfer.create")
    send = next(s for s in finished if s.name == "channel.send")

    def ancestors(span: ReadableSpan) -> list[ReadableSpan]:
        chain = []
        while span.parent is not None and span.parent.span_id in by_id:
            span = by_id[span.parent.span_id]
            chain.append(span)
        return chain

    # channel.send under transfer.create under the API request's SERVER span, which
    # continues the caller's trace.
    assert send.parent is not None and send.parent.span_id == create.context.span_id
    server = next(s for s in ancestors(create) if s.kind is SpanKind.SERVER)
    assert server.name == "POST /v1/transfers"
    assert f"{server.context.trace_id:032x}" == incoming_trace
    assert server.parent is not None and f"{server.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert send.attributes is not None and send.attributes["channel"] == "alipay"

    sent = [
        c.request
        for c in to_sandbox.calls
        if b"alipay.fund.trans.uni.transfer" in c.request.url.query + c.request.content
    ]
    assert sent, [str(c.request.url) for c in to_sandbox.calls]
    expected = f"00-{incoming_trace}-{send.context.span_id:016x}-01"
    assert sent[0].headers["traceparent"] == expected


async def test_the_aiohttp_transport_carries_the_current_span_traceparent(
    exporter: InMemorySpanExporter,  # installs an SDK provider: real span ids
) -> None:
    """The default transport sends on aiohttp itself (not through httpx's hooks): its
    requests carry the current span's traceparent too, and none outside a span's trace."""
    from aiohttp import web  # noqa: PLC0415 - only this test serves

    from paymux.channels.http import ChannelHttp  # noqa: PLC0415

    seen: list[str | None] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("traceparent"))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/gateway.do", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    http = ChannelHttp(
        base_url=f"http://127.0.0.1:{port}", timeout_seconds=5, connect_timeout_seconds=5
    )
    try:
        with tracing.span("channel.send", channel="alipay"):
            current = trace.get_current_span().get_span_context()
            answer = await http.request("POST", "/gateway.do", data={"a": "1"})
        await http.request("POST", "/gateway.do", data={"a": "2"})
    finally:
        await http.aclose()
        await runner.cleanup()
    assert answer.status_code == 200 and answer.content == b"ok"
    assert current.is_valid
    flags = int(current.trace_flags)
    assert seen[0] == f"00-{current.trace_id:032x}-{current.span_id:016x}-{flags:02x}"
    assert seen[1] is None
