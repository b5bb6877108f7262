"""RFC 9457 problem documents: every error the API returns has this shape."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from paymux.service.errors import ServiceError

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


def from_service_error(exc: ServiceError) -> Response:
    return problem(exc.status, exc.code, exc.title, exc.detail, headers=exc.headers, **exc.extra)


_HTTP_CODES = {
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
}


def install(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service(_: Request, exc: ServiceError) -> Response:
        return from_service_error(exc)

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
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        code, title = _HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        return problem(
            exc.status_code, code, title, detail, headers=dict(exc.headers) if exc.headers else None
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        # Never a stack trace or internal detail in a response; the log has it.
        import logging  # noqa: PLC0415

        logging.getLogger("paymux.api").exception("unhandled error", exc_info=exc)
        return internal_error()


def internal_error() -> Response:
    return problem(
        500,
        "internal_error",
        "Internal error",
        "an unexpected error occurred; it has been logged",
    )
