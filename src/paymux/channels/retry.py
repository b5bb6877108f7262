"""Resending a channel call while the channel cannot have accepted it (tenacity).

Only RetryableBeforeAcceptance is retried: a request that was never sent (see
:mod:`paymux.channels.transport`) or one the channel refused before accepting (HTTP 429, an
explicit "call limited"). Every attempt carries the same channel reference, so even a
resend the channel did see cannot pay twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from paymux.channels.errors import RetryableBeforeAcceptance

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 4  # in all, the first one included
    initial_seconds: float = 0.2  # first backoff; doubles up to max_seconds, plus jitter
    max_seconds: float = 2.0

    async def run(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        label: str,
        exhausted: Callable[[str], T],
    ) -> T:
        """``attempt()`` until it returns, resending while it raises
        RetryableBeforeAcceptance; when attempts run out, ``exhausted(reason)``."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            # Exponential backoff plus jitter (composed: works on tenacity 8 and 9).
            wait=wait_exponential(multiplier=self.initial_seconds, max=self.max_seconds)
            + wait_random(0, self.initial_seconds),
            retry=retry_if_exception_type(RetryableBeforeAcceptance),
            reraise=True,
        )
        try:
            async for state in retrying:
                with state:
                    return await attempt()
        except RetryableBeforeAcceptance as exc:
            log.warning("%s: still refused after %d attempts (%s)", label, self.attempts, exc)
            return exhausted(
                f"refused before acceptance, retries exhausted after {self.attempts} "
                f"attempts: {exc}"
            )
        raise AssertionError("unreachable: tenacity either returns or re-raises")
