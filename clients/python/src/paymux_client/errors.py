"""Exceptions: every RFC 9457 problem the API answers becomes a typed :class:`APIError`."""

from __future__ import annotations

from typing import Any

import httpx


class PaymuxError(Exception):
    """Base of every error this client raises."""


class APIConnectionError(PaymuxError):
    """The gateway could not be reached, or no answer came (after the retries)."""


class WebhookVerificationError(PaymuxError):
    """A webhook's signature, timestamp or headers did not verify: do not trust it."""


class APIError(PaymuxError):
    """An error answer (problem+json): ``status``, stable ``code``, human ``detail``."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        title: str | None = None,
        problem: dict[str, Any] | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title
        self.problem = problem or {}
        self.request_id = request_id
        self.retry_after = retry_after


class BadRequestError(APIError):
    """400: malformed request."""


class AuthenticationError(APIError):
    """401: missing or wrong API key."""


class PermissionDeniedError(APIError):
    """403: the key may not do this."""


class NotFoundError(APIError):
    """404: no such object (or not yours)."""


class ConflictError(APIError):
    """409: a request with the same Idempotency-Key is still in flight."""


class UnprocessableEntityError(APIError):
    """422: invalid fields, or an Idempotency-Key reused with another body."""


class IdempotencyKeyReusedError(UnprocessableEntityError):
    """The Idempotency-Key was used before with a different request body."""


class InsufficientFundsError(APIError):
    """The available balance does not cover amount + fee."""


class RateLimitError(APIError):
    """429: slow down (honour ``retry_after``)."""


class ServerError(APIError):
    """5xx: the gateway failed; a create with the same Idempotency-Key is safe to retry."""


class ServiceUnavailableError(ServerError):
    """503: not ready (a dependency is down)."""


_BY_CODE: dict[str, type[APIError]] = {
    "idempotency_key_reused": IdempotencyKeyReusedError,
    "insufficient_funds": InsufficientFundsError,
}
_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def retry_after_seconds(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (the delta form; an HTTP date is ignored)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def error_from_response(response: httpx.Response) -> APIError:
    try:
        body = response.json()
    except ValueError:
        body = None
    problem: dict[str, Any] = body if isinstance(body, dict) else {}
    status = response.status_code
    code = str(problem.get("code") or f"http_{status}")
    detail = str(problem.get("detail") or problem.get("title") or response.reason_phrase)
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else APIError
    return cls(
        status,
        code,
        detail,
        title=problem.get("title"),
        problem=problem,
        request_id=response.headers.get("x-request-id"),
        retry_after=retry_after_seconds(response),
    )
