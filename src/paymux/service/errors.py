"""Errors the use cases raise; the API turns them into RFC 9457 problem documents."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status = 400
    code = "bad_request"
    title = "Bad request"
    retryable = False  # answered with Retry-After: the same request may succeed later

    def __init__(self, detail: str, *, code_override: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        # HTTP headers the response must carry (e.g. WWW-Authenticate, Retry-After).
        self.headers: dict[str, str] | None = None
        if code_override:
            self.code = code_override


class NotFound(ServiceError):
    status, code, title = 404, "not_found", "Not found"


class InsufficientFundsError(ServiceError):
    status, code, title = 402, "insufficient_funds", "Insufficient funds"


class RoutingFailed(ServiceError):
    status, code, title = 422, "payee_type_unsupported", "No channel can pay this payee"


class IdempotencyKeyReused(ServiceError):
    status, code, title = 422, "idempotency_key_reused", "Idempotency key reused"


class IdempotencyInFlight(ServiceError):
    status, code, title = 409, "idempotency_request_in_flight", "Request in progress"
    retryable = True


class ServiceUnavailable(ServiceError):
    """A dependency (database, Redis) is down or too slow; nothing was changed."""

    status, code, title = 503, "service_unavailable", "Service unavailable"
    retryable = True


class InvalidRequest(ServiceError):
    status, code, title = 422, "validation_error", "Invalid request"


class Conflict(ServiceError):
    status, code, title = 409, "conflict", "Conflict"


class TransferNotCancelable(ServiceError):
    status, code, title = 409, "transfer_not_cancelable", "Transfer cannot be canceled"


class PayloadTooLarge(ServiceError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class UnsupportedMediaType(ServiceError):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"
