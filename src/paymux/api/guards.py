"""One ASGI middleware in front of every route: what no handler should have to remember.

- Request bodies are limited WHILE they stream: a declared ``Content-Length`` above the
  route's limit is answered 413 before a byte is read, and a chunked body is counted as it
  arrives, so a 300 MB upload never sits in memory (the handler's ``receive`` stops at the
  limit and the client gets 413).
- A body sent to the JSON API (``/v1/...``) must say it is JSON (415 otherwise).
- The decoded path and query string may not carry control characters (C0, DEL, C1) or
  invalid UTF-8: a NUL in a cursor or id would otherwise reach the database (PostgreSQL
  refuses it with a 500).
- Security headers on every response: ``Cache-Control: no-store`` (unless the route chose
  its own), ``X-Content-Type-Options: nosniff``, framing denied (``X-Frame-Options`` and
  CSP ``frame-ancestors``), and ``Strict-Transport-Security`` when the request came over
  TLS (the scheme, or ``X-Forwarded-Proto: https`` from the proxy in front).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paymux.api.problems import PROBLEM_BASE, PROBLEM_TYPE

DEFAULT_BODY_LIMIT = 64 * 1024
# Channel notifications are a few KB (Alipay form fields, a WeChat encrypted resource).
CALLBACK_BODY_LIMIT = 64 * 1024
BATCH_BODY_LIMIT = 2 * 1024 * 1024  # up to 1,000 transfers (JSON or CSV)
BODY_LIMIT_SCOPE_KEY = "paymux.body_limit"
JSON_PREFIXES = ("/v1/",)
HSTS = "max-age=63072000; includeSubDomains"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_METHODS_WITH_BODY = {"POST", "PUT", "PATCH", "DELETE"}


class BodyTooLarge(Exception):
    """Raised inside ``receive`` once a streamed body passes its route's limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than {limit} bytes")
        self.limit = limit


@dataclass
class BodyLimits:
    """The largest body each path prefix accepts (longest prefix wins)."""

    default: int = DEFAULT_BODY_LIMIT
    by_prefix: dict[str, int] = field(default_factory=dict)
    # Media types a prefix accepts besides JSON (e.g. CSV batches).
    also_accept: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def for_path(self, path: str) -> int:
        best, limit = -1, self.default
        for prefix, value in self.by_prefix.items():
            if path.startswith(prefix) and len(prefix) > best:
                best, limit = len(prefix), value
        return limit

    def accepts(self, path: str, content_type: str) -> bool:
        if is_json_media_type(content_type):
            return True
        media = content_type.split(";", 1)[0].strip().lower()
        return any(
            path.startswith(prefix) and media in types for prefix, types in self.also_accept.items()
        )


def is_json_media_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _problem(status: int, code: str, title: str, detail: str) -> tuple[int, bytes]:
    body = {
        "type": PROBLEM_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    return status, orjson.dumps(body)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def url_is_clean(scope: Scope) -> bool:
    """No control character or invalid UTF-8 in the path or any query parameter."""
    raw_path: bytes = scope.get("raw_path") or scope.get("path", "").encode()
    parts = [raw_path, *bytes(scope.get("query_string", b"")).replace(b"+", b" ").split(b"&")]
    for part in parts:
        try:
            text = unquote_to_bytes(part).decode("utf-8")
        except UnicodeDecodeError:
            return False
        if _CONTROL.search(text):
            return False
    return True


def _security_headers(scope: Scope, headers: list[tuple[bytes, bytes]]) -> None:
    present = {k.lower() for k, _ in headers}
    if b"cache-control" not in present:
        headers.append((b"cache-control", b"no-store"))
    if b"x-content-type-options" not in present:
        headers.append((b"x-content-type-options", b"nosniff"))
    if b"x-frame-options" not in present:
        headers.append((b"x-frame-options", b"DENY"))
    for i, (key, value) in enumerate(headers):
        if key.lower() == b"content-security-policy" and b"frame-ancestors" not in value:
            headers[i] = (key, value.rstrip(b"; ") + b"; frame-ancestors 'none'")
    if b"content-security-policy" not in present:
        headers.append((b"content-security-policy", b"frame-ancestors 'none'"))
    forwarded = (_header(scope, b"x-forwarded-proto") or "").split(",")[0].strip().lower()
    tls = scope.get("scheme") == "https" or forwarded == "https"
    if tls and b"strict-transport-security" not in present:
        headers.append((b"strict-transport-security", HSTS.encode()))


def install(app: Starlette, limits: BodyLimits | None = None) -> None:
    """Add the guard; ``app.state.body_limits`` lets a router raise its own prefix's limit
    (``app.state.body_limits.by_prefix["/v1/transfer_batches"] = 1 << 20``)."""
    app.state.body_limits = limits or BodyLimits(
        by_prefix={"/callbacks/": CALLBACK_BODY_LIMIT, "/v1/transfer_batches": BATCH_BODY_LIMIT},
        also_accept={"/v1/transfer_batches": ("text/csv",)},
    )
    app.add_middleware(GuardMiddleware, limits=app.state.body_limits)


class GuardMiddleware:
    def __init__(self, app: ASGIApp, limits: BodyLimits | None = None) -> None:
        self.app = app
        self.limits = limits or BodyLimits()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                _security_headers(scope, headers)
                message = {**message, "headers": headers}
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            await _send_problem(send_with_headers, *refusal)
            return
        limit = self.limits.for_path(scope["path"])
        scope[BODY_LIMIT_SCOPE_KEY] = limit
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except BodyTooLarge as exc:
            if started:
                raise
            await _send_problem(
                send_with_headers,
                *_problem(413, "payload_too_large", "Payload too large", str(exc)),
            )

    def _refusal(self, scope: Scope) -> tuple[int, bytes] | None:
        if not url_is_clean(scope):
            return _problem(
                400,
                "invalid_url",
                "Bad request",
                "the URL carries a control character or is not valid UTF-8",
            )
        path: str = scope["path"]
        limit = self.limits.for_path(path)
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                return _problem(400, "bad_request", "Bad request", "invalid Content-Length")
            if int(declared) > limit:
                return _problem(
                    413,
                    "payload_too_large",
                    "Payload too large",
                    f"request body is larger than {limit} bytes",
                )
        has_body = (declared is not None and int(declared) > 0) or (
            _header(scope, b"transfer-encoding") is not None
        )
        if (
            has_body
            and scope["method"] in _METHODS_WITH_BODY
            and path.startswith(JSON_PREFIXES)
            and not self.limits.accepts(path, _header(scope, b"content-type") or "")
        ):
            return _problem(
                415,
                "unsupported_media_type",
                "Unsupported media type",
                "send the body as JSON with 'Content-Type: application/json'",
            )
        return None


async def _send_problem(send: Send, status: int, body: bytes) -> None:
    headers: list[Any] = [
        (b"content-type", PROBLEM_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if status == 413:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
