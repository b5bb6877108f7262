"""ASGI middleware: a request id for every request, and its latency per route template.

The id comes from the caller's ``X-Request-Id`` when it is a short token of safe characters
(so it cannot forge log lines or blow up label sets), otherwise it is generated; either way
it is set in :mod:`paymux.request_context` for every log line of the request and echoed in
the response's ``X-Request-Id``.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paymux import metrics, request_context
from paymux.api.problems import internal_error

log = logging.getLogger("paymux.api")

HEADER = b"x-request-id"
MAX_LENGTH = 128
_VALID = re.compile(rb"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")


def new_request_id() -> str:
    return "req_" + uuid.uuid4().hex


def accepted_request_id(raw: bytes | None) -> str:
    """The caller's id if it is 1-128 safe characters, otherwise a fresh one."""
    if raw is not None and len(raw) <= MAX_LENGTH and _VALID.match(raw):
        return raw.decode("ascii")
    return new_request_id()


def route_template(scope: Scope) -> str:
    """``/v1/transfers/{transfer_id}``, not the raw path: bounded label values."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = next((v for k, v in scope["headers"] if k == HEADER), None)
        rid = accepted_request_id(raw)
        rid_token = request_context.request_id.set(rid)
        tid_token = request_context.transfer_id.set(None)
        status = 500
        status_sent = False
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, status_sent
            if message["type"] == "http.response.start":
                status, status_sent = message["status"], True
                headers = [(k, v) for k, v in message.get("headers", []) if k != HEADER]
                headers.append((HEADER, rid.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                # Answered here, not by Starlette's outermost handler, so the 500 carries
                # the request id and its log line is in this request's context.
                if status_sent:
                    raise
                log.exception("unhandled error")
                await internal_error()(scope, receive, send_with_id)
        finally:
            metrics.http_request_seconds.labels(
                scope["method"], route_template(scope), str(status)
            ).observe(time.perf_counter() - started)
            request_context.transfer_id.reset(tid_token)
            request_context.request_id.reset(rid_token)
