"""Per-request context shared by logging, auditing and tracing: the request id (from an
``X-Request-Id`` header or generated) and the transfer id once one is known.

A ContextVar, not a FastAPI dependency, so any layer can read it without importing the API.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("paymux_request_id", default=None)
transfer_id: ContextVar[str | None] = ContextVar("paymux_transfer_id", default=None)


def current_request_id() -> str | None:
    return request_id.get()


def current_transfer_id() -> str | None:
    return transfer_id.get()


@contextmanager
def transfer_scope(value: str) -> Iterator[None]:
    """Log lines inside carry ``value`` as the transfer id (background loops, per transfer)."""
    token = transfer_id.set(value)
    try:
        yield
    finally:
        transfer_id.reset(token)
