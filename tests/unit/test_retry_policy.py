"""The channels' retry policy: resends only what the channel cannot have accepted, backs
off exponentially with jitter up to a bound, and stops after its attempts."""

from __future__ import annotations

import pytest

from paymux.channels.errors import RetryableBeforeAcceptance
from paymux.channels.retry import RetryPolicy


class _Script:
    """An attempt that raises the scripted refusals, then answers "ok"."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.refusals:
            raise RetryableBeforeAcceptance(f"refused #{self.calls}")
        return "ok"


def _policy(attempts: int, waits: list[float]) -> RetryPolicy:
    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    return RetryPolicy(attempts, initial_seconds=0.1, max_seconds=0.5, sleep=sleep)


async def test_an_answer_at_once_is_one_call_and_no_wait() -> None:
    waits: list[float] = []
    script = _Script(refusals=0)
    assert await _policy(4, waits).run(script, label="t", exhausted=str) == "ok"
    assert script.calls == 1 and waits == []


@pytest.mark.parametrize("refusals", [1, 2, 3])
async def test_refusals_are_resent_with_growing_bounded_waits(refusals: int) -> None:
    waits: list[float] = []
    script = _Script(refusals)
    assert await _policy(4, waits).run(script, label="t", exhausted=str) == "ok"
    assert script.calls == refusals + 1
    assert len(waits) == refusals
    # resend n waits initial × 2^(n-1) (at most max) plus jitter in [0, initial]
    for n, wait in enumerate(waits, start=1):
        base = min(0.1 * 2 ** (n - 1), 0.5)
        assert base <= wait <= base + 0.1 + 1e-9


async def test_attempts_run_out_into_exhausted_with_the_last_reason() -> None:
    waits: list[float] = []
    script = _Script(refusals=10)
    reason = await _policy(3, waits).run(script, label="t", exhausted=lambda why: why)
    assert script.calls == 3 and len(waits) == 2
    assert "exhausted after 3 attempts" in reason and "refused #3" in reason


async def test_one_attempt_means_no_resend() -> None:
    waits: list[float] = []
    script = _Script(refusals=1)
    reason = await _policy(1, waits).run(script, label="t", exhausted=lambda why: why)
    assert script.calls == 1 and waits == [] and "refused #1" in reason


async def test_other_errors_are_never_resent() -> None:
    calls = 0

    async def broken() -> str:
        nonlocal calls
        calls += 1
        raise ValueError("not a refusal")

    with pytest.raises(ValueError, match="not a refusal"):
        await _policy(4, []).run(broken, label="t", exhausted=str)
    assert calls == 1


async def test_a_later_error_after_a_refusal_propagates() -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RetryableBeforeAcceptance("busy")
        raise ValueError("broke on the resend")

    with pytest.raises(ValueError, match="broke on the resend"):
        await _policy(4, []).run(flaky, label="t", exhausted=str)
    assert calls == 2


def test_backoff_doubles_and_is_capped() -> None:
    p = RetryPolicy(6, initial_seconds=0.2, max_seconds=1.0)
    assert [p.backoff(n, 0.0) for n in range(1, 6)] == [0.2, 0.4, 0.8, 1.0, 1.0]
