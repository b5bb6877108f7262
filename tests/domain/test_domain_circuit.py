"""The channel circuit breaker's state machine (pure: time is an argument)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from paymux.domain.circuit import (
    Circuit,
    CircuitPolicy,
    CircuitState,
    admit,
    record_failure,
    record_success,
)

POLICY = CircuitPolicy(failure_threshold=3, open_seconds=10.0)


def _fail(c: Circuit, times: int, now: float = 0.0) -> Circuit:
    for _ in range(times):
        c = record_failure(c, now, POLICY)
    return c


def test_closed_admits_and_opens_after_threshold_consecutive_failures() -> None:
    c = _fail(Circuit(), 2)
    assert c.state is CircuitState.closed
    assert admit(c, 0.0, POLICY)[1]
    c = _fail(c, 1, now=5.0)
    assert c.state is CircuitState.open
    assert admit(c, 5.0, POLICY)[1] is False
    assert admit(c, 14.9, POLICY)[1] is False


def test_a_success_resets_the_count() -> None:
    c = record_success(_fail(Circuit(), 2))
    assert _fail(c, 2).state is CircuitState.closed


def test_after_open_seconds_one_probe_goes_and_its_success_closes() -> None:
    c = _fail(Circuit(), 3, now=0.0)
    c, ok = admit(c, 10.0, POLICY)
    assert ok and c.state is CircuitState.half_open and c.probing
    assert admit(c, 10.1, POLICY)[1] is False  # one probe at a time
    c = record_success(c)
    assert c == Circuit()
    assert admit(c, 10.2, POLICY)[1]


def test_a_failed_probe_opens_again_for_another_spell() -> None:
    c, _ = admit(_fail(Circuit(), 3, now=0.0), 10.0, POLICY)
    c = record_failure(c, 11.0, POLICY)
    assert c.state is CircuitState.open
    assert admit(c, 20.9, POLICY)[1] is False
    assert admit(c, 21.0, POLICY)[1] is True


def test_a_probe_that_never_reports_is_given_up_after_open_seconds() -> None:
    c, _ = admit(_fail(Circuit(), 3, now=0.0), 10.0, POLICY)
    c2, ok = admit(c, 20.0, POLICY)  # the prober died; another call probes
    assert ok and c2.state is CircuitState.half_open and c2.since == 20.0


@settings(deadline=None)  # pure and fast; a loaded CI machine must not make it flaky
@given(
    st.lists(
        st.tuples(st.sampled_from(["admit", "ok", "fail"]), st.floats(0, 5)),
        max_size=60,
    )
)
def test_invariants_under_any_sequence(steps: list[tuple[str, float]]) -> None:
    """Closed always admits; open never admits before open_seconds; at most one probe out."""
    c, now = Circuit(), 0.0
    for op, dt in steps:
        now += dt
        if op == "admit":
            before = c
            c, ok = admit(c, now, POLICY)
            if before.state is CircuitState.closed:
                assert ok and c == before
            elif now - before.since < POLICY.open_seconds:
                assert not ok and c == before
            else:
                assert ok and c.state is CircuitState.half_open and c.since == now
        elif op == "ok":
            c = record_success(c)
            assert c.state is CircuitState.closed and c.failures == 0
        else:
            was_closed = c.state is CircuitState.closed
            c = record_failure(c, now, POLICY)
            if was_closed and c.failures < POLICY.failure_threshold:
                assert c.state is CircuitState.closed
            else:
                assert c.state is CircuitState.open and c.since == now
