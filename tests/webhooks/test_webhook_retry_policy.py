"""Webhook retry schedule."""

from __future__ import annotations

import random

import pytest

from paymux.webhooks.retry_policy import (
    DEFAULT_SCHEDULE,
    SVIX_SCHEDULE,
    next_delay,
    total_span_seconds,
    validate_schedule,
)


def test_default_is_the_standard_webhooks_example_schedule() -> None:
    assert DEFAULT_SCHEDULE == (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
    # 75 h 35 min 5 s from the first attempt to the last: "about 3 days".
    assert total_span_seconds(DEFAULT_SCHEDULE) == 75 * 3600 + 35 * 60 + 5
    assert total_span_seconds(SVIX_SCHEDULE) == 27 * 3600 + 35 * 60 + 5


def test_next_delay_walks_the_schedule_then_gives_up() -> None:
    delays = [next_delay(n) for n in range(1, len(DEFAULT_SCHEDULE) + 2)]
    assert delays == [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400, None, None]


def test_custom_schedule_from_settings() -> None:
    schedule = validate_schedule([0, 1, 2])
    assert [next_delay(n, schedule) for n in (1, 2, 3)] == [1, 2, None]
    assert next_delay(1, (0,)) is None  # a single attempt: never retried


@pytest.mark.parametrize("bad", [[], [-1], [0, 1.5], [0, True]])
def test_invalid_schedules_are_refused(bad: list[object]) -> None:
    with pytest.raises(ValueError):
        validate_schedule(bad)  # type: ignore[arg-type]


def test_jitter_is_bounded_and_deterministic_when_seeded() -> None:
    first = [next_delay(4, jitter=0.1, rng=random.Random(7)) for _ in range(3)]
    again = [next_delay(4, jitter=0.1, rng=random.Random(7)) for _ in range(3)]
    assert first == again
    rng = random.Random(1)
    seen = {next_delay(4, jitter=0.1, rng=rng) for _ in range(500)}
    assert all(d is not None and 6480 <= d <= 7920 for d in seen)
    assert len(seen) > 100  # it really spreads
    assert next_delay(len(DEFAULT_SCHEDULE), jitter=0.5, rng=rng) is None


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        next_delay(0)
    with pytest.raises(ValueError):
        next_delay(1, jitter=1.5)
