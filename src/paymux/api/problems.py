"""RFC 9457 problem documents: every error the API returns has this shape."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from paymux.service.errors import ServiceError, ServiceUnavailable
from paymux.store.errors import DatabaseUnavailable
from paymux.store.idempotency import IdempotencyUnavailable

PROBLEM_BASE = "https://paymux.dev/problems/"
PROBLEM_TYPE = "application/problem+json"


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body = {
        "type": PROBLEM_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    return Response(
        orjson.dumps(body), status_code=status, media_type=PROBLEM_TYPE, headers=headers
    )


def from_service_error(exc: ServiceError, *, retry_after: int = 1) -> Response:
    headers = dict(exc.headers or {})
    if exc.retryable:
        headers.setdefault("Retry-After", str(retry_after))
    return problem(
        exc.status, exc.code, exc.title, exc.detail, headers=headers or None, **exc.extra
    )


def _retry_after(request: Request) -> int:
    gw = getattr(request.app.state, "gateway", None)
    return int(getattr(getattr(gw, "settings", None), "retry_after_seconds", 1))


# Outage errors as the layers below raise them, and any driver error that slipped past
# their translation: a dependency outage is a 503 with Retry-After, never a 500.
_OUTAGES: tuple[type[BaseException], ...] = (
    DatabaseUnavailable,
    IdempotencyUnavailable,
    ConnectionError,
    TimeoutError,
)


def outage_in(exc: BaseException) -> BaseException | None:
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        if isinstance(current, _OUTAGES) or type(current).__module__.startswith("redis."):
            return current
        current = current.__cause__ or current.__context__
        seen += 1
    return None


def unavailable(request: Request, what: str) -> Response:
    exc = ServiceUnavailable(f"{what} is unavailable; nothing was changed, retry later")
    return from_service_error(exc, retry_after=_retry_after(request))


_HTTP_CODES = {
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
}


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this path: Starlette's own 405 names only the
    methods of the first route that matched the path."""
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.routes
        )
    ]
    return ", ".join(allowed)


def install(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError) -> Response:
        return from_service_error(exc, retry_after=_retry_after(request))

    @app.exception_handler(DatabaseUnavailable)
    async def _database(request: Request, exc: DatabaseUnavailable) -> Response:
        logging.getLogger("paymux.api").warning("database unavailable: %s", exc)
        return unavailable(request, "the database")

    @app.exception_handler(IdempotencyUnavailable)
    async def _redis(request: Request, exc: IdempotencyUnavailable) -> Response:
        logging.getLogger("paymux.api").warning("redis unavailable: %s", exc)
        return unavailable(request, "the idempotency store")

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        errors = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": e.get("msg", ""),
                "type": e.get("type", ""),
            }
            for e in exc.errors()
        ]
        return problem(
            422,
            "validation_error",
            "Invalid request",
            "the request has invalid fields",
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code, title = _HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        return problem(exc.status_code, code, title, detail, headers=headers or None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # Never a stack trace or internal detail in a response; the log has it.
        if (cause := outage_in(exc)) is not None:
            logging.getLogger("paymux.api").warning(
                "dependency unavailable: %s", type(cause).__name__
            )
            return unavailable(request, "a dependency")
        logging.getLogger("paymux.api").exception("unhandled error", exc_info=exc)
        return internal_error()


def internal_error() -> Response:
    return problem(
        500,
        "internal_error",
        "Internal error",
        "an unexpected error occurred; it has been logged",
    )
