"""Resending a channel call while the channel cannot have accepted it (tenacity).

Only RetryableBeforeAcceptance is retried: a request that was never sent (see
:mod:`paymux.channels.transport`) or one the channel refused before accepting (HTTP 429, an
explicit "call limited"). Every attempt carries the same channel reference, so even a
resend the channel did see cannot pay twice.
"""

from __future__ import annotations

import asyncio
import logging
import random
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
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # tests watch the backoff

    def backoff(self, resend: int, jitter: float) -> float:
        """The wait before resend number ``resend`` (1 = the second attempt):
        ``initial × 2^(resend-1)``, at most ``max_seconds``, plus ``jitter`` (drawn from
        [0, initial))."""
        wait: float = min(self.initial_seconds * 2.0 ** (resend - 1), self.max_seconds)
        return wait + jitter

    async def run(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        label: str,
        exhausted: Callable[[str], T],
    ) -> T:
        """``attempt()`` until it returns, resending while it raises
        RetryableBeforeAcceptance; when attempts run out, ``exhausted(reason)``."""
        # The first attempt runs bare: nearly every call is answered at once, and tenacity's
        # bookkeeping cost ~3 % of the gateway's CPU per transfer when it wrapped every call.
        try:
            return await attempt()
        except RetryableBeforeAcceptance as exc:
            refused = exc
        if self.attempts > 1:
            await self.sleep(self.backoff(1, random.uniform(0, self.initial_seconds)))
            # The resends: tenacity's attempt n is resend n+1, so the exponential starts one
            # doubling further on (the same waits as backoff()).
            resends = AsyncRetrying(
                stop=stop_after_attempt(self.attempts - 1),
                wait=wait_exponential(multiplier=2 * self.initial_seconds, max=self.max_seconds)
                + wait_random(0, self.initial_seconds),
                retry=retry_if_exception_type(RetryableBeforeAcceptance),
                reraise=True,
                sleep=self.sleep,
            )
            try:
                async for state in resends:
                    with state:
                        return await attempt()
            except RetryableBeforeAcceptance as exc:
                refused = exc
        log.warning("%s: still refused after %d attempts (%s)", label, self.attempts, refused)
        return exhausted(
            f"refused before acceptance, retries exhausted after {self.attempts} "
            f"attempts: {refused}"
        )
