"""What the sync and async clients share: request descriptions, the retry policy, parsing."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel
from tenacity import RetryCallState, wait_exponential, wait_random

from paymux_client.errors import APIError, error_from_response

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
VERSION = "0.1.0"
# 409: same key still in flight; 429: refused before any work; 5xx: outcome unknown, and
# the same Idempotency-Key makes the retry return the first outcome instead of a second one.
RETRY_STATUSES = frozenset({409, 429, 500, 502, 503, 504})
# 409s that mean "the first request with this key is still running": wait and ask again.
RETRYABLE_CONFLICTS = frozenset(
    {"idempotency_request_in_flight", "idempotency_request_in_progress"}
)
MAX_RETRY_AFTER_SECONDS = 60.0
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


def new_idempotency_key() -> str:
    return "pmx_" + uuid.uuid4().hex


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API request and how to read its answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    idempotency_key: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def repeatable(self) -> bool:
        """Safe to send again after an unknown outcome: reads, or creates with a key."""
        return self.method in _SAFE_METHODS or self.idempotency_key is not None

    def request_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.idempotency_key is not None:
            headers["Idempotency-Key"] = self.idempotency_key
        return headers

    def clean_params(self) -> dict[str, Any] | None:
        if not self.params:
            return None
        return {k: v for k, v in self.params.items() if v is not None}


def model_parser(model: type[M]) -> Callable[[httpx.Response], M]:
    def parse(response: httpx.Response) -> M:
        return model.model_validate_json(response.content)

    return parse


def no_content(_: httpx.Response) -> None:
    return None


def text_body(response: httpx.Response) -> str:
    return response.text


def check(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        raise error_from_response(response)
    return response


def should_retry(call: Call[Any], exc: BaseException) -> bool:
    if isinstance(exc, APIError):
        if exc.status == 429:
            return True  # refused before any work was done
        if exc.status == 409 and exc.code not in RETRYABLE_CONFLICTS:
            return False  # a business conflict (e.g. transfer_not_cancelable) stays one
        return call.repeatable and exc.status in RETRY_STATUSES
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return True  # the request never reached the gateway
    if isinstance(exc, httpx.TransportError):
        return call.repeatable  # sent, answer lost: only with the same key or a read
    return False


class RetryAfterWait:
    """Wait what ``Retry-After`` says (bounded), else exponential backoff with jitter."""

    def __init__(self, initial: float = 0.5, maximum: float = 8.0) -> None:
        self._backoff = wait_exponential(multiplier=initial, max=maximum) + wait_random(0, initial)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, APIError) and exc.retry_after is not None:
            return min(exc.retry_after, MAX_RETRY_AFTER_SECONDS)
        return float(self._backoff(state))


def default_headers(api_key: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {api_key}",
        "Accept": "application/json",
        "User-Agent": f"paymux-python/{VERSION}",
    }
