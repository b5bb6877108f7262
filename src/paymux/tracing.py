"""OpenTelemetry tracing, optional: ``pip install paymux[otel]``.

A trace spans API request → service use case → channel call, and the channel's HTTP request
carries the W3C ``traceparent`` of the channel-call span. The API request's SERVER span (which
continues a caller's ``traceparent``) is FastAPI's own telemetry; this module adds the
service and channel spans under it and the propagation to channels. Without the
OpenTelemetry SDK (or with tracing not switched on) every helper here is a cheap no-op, so
this module imports safely anywhere and the hot path pays nothing.

Switch it on with ``PAYMUX_OTEL_ENABLED=true``; spans go to the OTLP/HTTP exporter
configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables. Tests install their own
provider with :func:`use_provider`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import httpx

log = logging.getLogger(__name__)

try:  # the API alone is harmless; spans record only once an SDK provider is installed
    from opentelemetry import propagate as _propagate
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - depends on the environment
    _propagate = None  # type: ignore[assignment]
    _trace = None  # type: ignore[assignment]

_enabled = False


def enabled() -> bool:
    return _enabled


def use_provider(provider: Any) -> None:
    """Install an SDK TracerProvider (tests: one with an in-memory exporter)."""
    global _enabled  # noqa: PLW0603 - process-wide switch, like OpenTelemetry's own
    if _trace is None:
        raise RuntimeError("opentelemetry is not installed: pip install 'paymux[otel]'")
    _trace.set_tracer_provider(provider)
    _enabled = True


def disable() -> None:
    """Stop recording (tests); clients made afterwards carry no propagation hook."""
    global _enabled  # noqa: PLW0603
    _enabled = False


def setup_from_environment() -> bool:
    """Export spans over OTLP/HTTP when PAYMUX_OTEL_ENABLED is true and the SDK is there."""
    if _enabled:
        return True
    if os.environ.get("PAYMUX_OTEL_ENABLED", "").lower() not in {"1", "true", "yes"}:
        return False
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415
    except ImportError:
        log.warning("PAYMUX_OTEL_ENABLED is set but the otel extra is not installed")
        return False
    provider = TracerProvider(resource=Resource.create({"service.name": "paymux"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    use_provider(provider)
    return True


@contextlib.contextmanager
def span(name: str, **attributes: str | int) -> Iterator[None]:
    """A child span of the current one (no-op when tracing is off)."""
    if not _enabled or _trace is None:
        yield
        return
    with _trace.get_tracer("paymux").start_as_current_span(name, attributes=attributes):
        yield


async def inject_traceparent(request: httpx.Request) -> None:
    """httpx request hook: the current span's W3C ``traceparent`` on the outgoing request."""
    if _propagate is None:
        return
    carrier: dict[str, str] = {}
    _propagate.inject(carrier)
    for key, value in carrier.items():
        request.headers[key] = value


def outgoing_headers() -> dict[str, str]:
    """The current span's W3C trace headers for a request going out (none when off)."""
    if not _enabled or _propagate is None:
        return {}
    carrier: dict[str, str] = {}
    _propagate.inject(carrier)
    return carrier


def request_hooks() -> dict[str, list[Any]]:
    """Event hooks for a channel's httpx client: propagation only when tracing is on."""
    return {"request": [inject_traceparent]} if _enabled else {}
