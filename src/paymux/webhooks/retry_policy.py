"""When to try a failed webhook delivery again, and when to give up.

A schedule is a tuple of delays in seconds: entry n-1 is the wait before attempt n, counted
from the moment attempt n-1 finished (entry 0 is the first attempt, normally immediate). Its
length is therefore the total number of attempts.

The default is the example schedule of the Standard Webhooks specification: immediately,
5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h - ten attempts over about 3 days
(75 h 35 min 5 s). SVIX_SCHEDULE is Svix's shorter one (eight attempts over about 27.6 h).
"""

from __future__ import annotations

import random
from collections.abc import Iterable

_MINUTE = 60
_HOUR = 60 * _MINUTE

DEFAULT_SCHEDULE: tuple[int, ...] = (
    0,
    5,
    5 * _MINUTE,
    30 * _MINUTE,
    2 * _HOUR,
    5 * _HOUR,
    10 * _HOUR,
    14 * _HOUR,
    20 * _HOUR,
    24 * _HOUR,
)

SVIX_SCHEDULE: tuple[int, ...] = (
    0,
    5,
    5 * _MINUTE,
    30 * _MINUTE,
    2 * _HOUR,
    5 * _HOUR,
    10 * _HOUR,
    10 * _HOUR,
)


def validate_schedule(schedule: Iterable[int]) -> tuple[int, ...]:
    """A schedule from settings, checked: at least one attempt, whole non-negative seconds."""
    checked = tuple(schedule)
    if not checked:
        raise ValueError("a retry schedule needs at least one attempt")
    for delay in checked:
        if isinstance(delay, bool) or not isinstance(delay, int) or delay < 0:
            raise ValueError("retry delays must be non-negative whole seconds")
    return checked


def total_span_seconds(schedule: Iterable[int] = DEFAULT_SCHEDULE) -> int:
    """Time from the first attempt to the last one if every attempt fails instantly."""
    return sum(tuple(schedule)[1:])


def next_delay(
    attempt_number: int,
    schedule: tuple[int, ...] = DEFAULT_SCHEDULE,
    *,
    jitter: float = 0.0,
    rng: random.Random | None = None,
) -> int | None:
    """Seconds to wait after failed attempt `attempt_number` (1-based), or None to give up.

    `jitter` is a fraction (0.1 = up to +/-10%) spread over whole seconds so that endpoints
    recovering from an outage are not hit by every retry in the same second; pass a seeded
    `rng` for deterministic results.
    """
    if attempt_number < 1:
        raise ValueError("attempt numbers start at 1")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError("jitter must be a fraction between 0 and 1")
    if attempt_number >= len(schedule):
        return None
    delay = schedule[attempt_number]
    if jitter == 0.0 or delay == 0:
        return delay
    spread = (rng or random).uniform(-jitter, jitter)
    return max(0, round(delay * (1.0 + spread)))
